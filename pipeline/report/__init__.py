"""Per-patient HTML report (``spectdose report``)."""
