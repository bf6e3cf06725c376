"""The spectdose DICOM node: receive scans, run the workflow after each session, send DICOM results.

Modules: :mod:`.config` (node.yaml), :mod:`.db` (SQLite state), :mod:`.spool` (atomic storage),
:mod:`.scp` (pynetdicom Storage SCP), :mod:`.sessions` (pairing, quiet period, readiness),
:mod:`.runner` (workflow runs, export), :mod:`.send` (C-STORE), :mod:`.node` (main loop),
:mod:`.purge`, :mod:`.cli`. Nothing is done at import time.
"""
