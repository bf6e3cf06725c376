"""Kinetics: time-activity curves, fits with model selection, time-integrated activity.

Modules: :mod:`.models` (sums of exponentials with physical decay, analytic
integrals), :mod:`.fitting` (weighted least squares, AICc, model-free and
single-time-point estimates), :mod:`.tac` (organ curves from SPECT and a label
map), :mod:`.voxel` (voxel-wise TIA in numba), :mod:`.cli` (``spectdose kinetics``).
Importing this package does no work.
"""
