"""Registration of serial SPECT/CT time points to one reference time point.

Every other time point's CT is registered to the reference CT (rigid, then an
optional regularised B-spline stage); each session's SPECT shares its CT's
frame of reference, so the same transform carries it onto the dose grid (the
reference SPECT grid by default) with an activity-conserving resampling.

Transform convention (as ITK): *fixed* = the reference time point, *moving* =
the other time point. A transform maps a point of the reference space to the
corresponding point of the moving space, so that
``moved(x) = moving(T(x))``. ``.tfm`` files hold that map in ITK's LPS
millimetres; in memory :func:`pipeline.register.transforms.affine_ras` gives the
same map as a 4x4 matrix on RAS+ millimetres (the :class:`pipeline.image.Image`
convention).

Modules
-------
transforms
    Conversions between SimpleITK transforms and RAS+ matrices; rotation angle.
masks
    Body and bone masks from CT (HU thresholds), region masks.
rigid
    Euler 3-D registration with Mattes mutual information, multi-resolution.
deformable
    Regularised cubic B-spline on top of the rigid result.
resample
    Activity-conserving resampling of SPECT onto the dose grid; CT resampling.
qc
    Metrics before/after, plausibility checks, the overlay PNG.
reference
    Choice of the reference time point.
stage
    One time point end to end (register, resample, QC, write).
cli
    ``spectdose register``.
benchmark
    On-demand timing of the rigid stage on the standard sample patient.
"""
