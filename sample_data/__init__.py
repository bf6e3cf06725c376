"""The digital SPECT/CT patient generator (data are generated on demand, never committed).

Public API (imported lazily, so that ``import sample_data`` does no work):

- :func:`sample_data.generate` writes a full sample patient (DICOM or NIfTI, manifest,
  ground truth, montage) and returns the output folder.
- :func:`sample_data.build_phantom` returns the reference-pose anatomy in memory
  (CT in HU, label map, tissue map as :class:`pipeline.image.Image`).

See ``sample_data/README.md`` for the output layout and conventions.
"""

__all__ = ["generate", "build_phantom", "PRESETS"]

_LAZY = {
    "generate": "sample_data.generator",
    "build_phantom": "sample_data.anatomy",
    "PRESETS": "sample_data.presets",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sample_data' has no attribute {name!r}")
