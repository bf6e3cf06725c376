"""``spectdose ingest``: DICOM or NIfTI SPECT/CT time points to calibrated, timed volumes.

Modules: :mod:`.dicom_scan` (find and group series), :mod:`.geometry` (DICOM
LPS to the RAS+ affine), :mod:`.ct_series`, :mod:`.nm_series` (reading),
:mod:`.units` (Bq/mL, counts, decay correction), :mod:`.timing` (times,
activity, nuclide), :mod:`.manifest`, :mod:`.pairing`, :mod:`.run` (plan and
write), :mod:`.cli`.
"""

from .run import Overrides, ingest, plan_ingest, run_ingest

__all__ = ["Overrides", "ingest", "plan_ingest", "run_ingest"]
