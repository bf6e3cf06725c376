"""spectdose: patient-specific dosimetry for radiopharmaceutical therapy.

The stages (ingest, register, segment, kinetics, dose) are functions on
in-memory :class:`pipeline.image.Image` objects; their command-line faces live
in ``pipeline.cli`` and the stage modules. Importing this package does no work.
"""

__version__ = "0.1.0"
