"""Physics of spectdose: decay data, Monte Carlo kernels, voxel S-values and convolution.

Importing this package does no work: submodules are imported on demand and
numba functions compile on first call.
"""
