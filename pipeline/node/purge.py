"""Delete one patient's PHI from the node: received DICOM, session links, exports, pseudonym mapping.

The pseudonymous results in ``<workdir>/results/<pseudonym>/`` are kept (they hold no
identifiers); without the mapping they can no longer be linked to the patient from this server.
"""

from __future__ import annotations

import shutil

from pipeline.errors import InputError

__all__ = ["purge_patient"]


def purge_patient(node, pseudonym: str) -> str:
    """Remove the patient ``pseudonym`` from the spool and database; returns a summary.

    Raises
    ------
    InputError
        Unknown pseudonym, or a run of the patient is still going.
    """
    db, spool = node.db, node.config.spool
    rows = db.query("SELECT patient_key FROM patients WHERE pseudonym=?", (pseudonym,))
    if not rows:
        raise InputError(node.config.db_path, f"no patient with pseudonym {pseudonym}")
    key = rows[0]["patient_key"]
    if db.query("SELECT 1 FROM runs WHERE patient_key=? AND state IN ('running', 'exporting', 'sending')", (key,)):
        raise InputError(node.config.db_path, f"a run of {pseudonym} is still going; stop the node first")
    n_files = db.query("SELECT count(*) AS n FROM instances WHERE patient_key=?", (key,))[0]["n"]
    for folder in (spool / "dicom" / key, spool / "sessions" / key, spool / "outbox" / pseudonym):
        shutil.rmtree(folder, ignore_errors=True)
    (spool / "overrides" / f"{pseudonym}.yaml").unlink(missing_ok=True)
    with db.transaction() as conn:
        for table in ("instances", "series", "sessions", "patients"):
            conn.execute(f"DELETE FROM {table} WHERE patient_key=?", (key,))
    return f"{n_files} received instance(s), session links, exports and the pseudonym mapping deleted"
