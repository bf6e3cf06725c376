"""The digital SPECT/CT patient generator (data are generated on demand, never committed)."""
