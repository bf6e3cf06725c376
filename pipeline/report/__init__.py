"""Per-patient dosimetry report (``spectdose report``): HTML, PDF, fused dose figures, viewer bundle."""
