"""Monte Carlo generation of the kernel data (optional extra ``spectdose[mc]``).

Decays are sampled from ICRP-107 (:mod:`kernels.mc.sampling`), written as an
IAEA phase-space file whose particles start inside the phantom
(:mod:`kernels.mc.phasespace`) and transported with ``ompmc`` (EGSnrc
condensed-history physics, :mod:`kernels.mc.engine`). :mod:`kernels.mc.svalues`
scores direct voxel S-value cubes, :mod:`kernels.mc.pointkernel` radial
dose-point kernels, :mod:`kernels.mc.cli` is ``spectdose kernel generate``.

``ompmc`` is imported inside functions only: this package imports without it,
and the committed data under ``kernels/data`` never need it.
"""
