"""DICOM results of a finished patient: RT Dose, Segmentation and the report as Encapsulated PDF.

See :mod:`pipeline.export.run` (what is written) and :mod:`pipeline.export.sources` (where the
patient's identifiers come from: the DICOM as received, never the pseudonymous results).
Nothing is imported here at import time beyond the module names.
"""
