"""C-STORE of a run's DICOM results to every configured destination, with retries.

Each destination gets its own association proposing exactly the SOP classes of the files
(Explicit and Implicit VR Little Endian). A destination that cannot be reached, rejects the
association or answers a failure status is recorded (``sends`` table: state ``failed``, the
reason, the attempts) and tried again by :meth:`Sender.retry_failed` on later turns of the main
loop, up to :data:`MAX_ATTEMPTS`. The exported UIDs are repeatable, so a resend after a partial
send stores no duplicates. Logged: destination AE title, host and port, file counts, statuses.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from .config import Destination, NodeConfig
from .db import NodeDB

__all__ = ["Sender", "store_files", "MAX_ATTEMPTS", "RETRY_AFTER_S"]

log = logging.getLogger("spectdose.node")
MAX_ATTEMPTS = 10
RETRY_AFTER_S = 60.0


def _name(dest: Destination) -> str:
    return f"{dest.ae_title}@{dest.host}:{dest.port}"


def store_files(files, dest: Destination, calling_ae: str, timeout_s: float = 30.0) -> tuple[bool, str]:
    """Send ``files`` to ``dest`` in one association; ``(all stored, detail)``."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
    from pynetdicom import AE

    datasets = [pydicom.dcmread(f) for f in files]
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    for sop_class in sorted({str(ds.SOPClassUID) for ds in datasets}):
        ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    try:
        assoc = ae.associate(dest.host, dest.port, ae_title=dest.ae_title)
    except OSError as exc:
        return False, f"cannot connect ({exc})"
    if not assoc.is_established:
        return False, "association rejected or no answer"
    problems = []
    try:
        for path, ds in zip(files, datasets):
            status = assoc.send_c_store(ds)
            code = int(status.Status) if status and "Status" in status else None
            if code is None or (code != 0x0000 and not 0xB000 <= code <= 0xBFFF):
                problems.append(f"{Path(path).name}: status {'none' if code is None else hex(code)}")
    finally:
        if assoc.is_established:
            assoc.release()
    return not problems, "; ".join(problems) or f"{len(files)} object(s) stored"


class Sender:
    """Sends the results of runs to the destinations of ``config`` and records the outcome."""

    def __init__(self, config: NodeConfig, db: NodeDB):
        self.config = config
        self.db = db

    def send_run(self, run_id: int, files: list) -> bool:
        """Send ``files`` to every destination not yet done for this run; True when all succeeded."""
        all_ok = True
        for dest in self.config.destinations:
            done = self.db.query("SELECT state FROM sends WHERE run_id=? AND destination=?", (run_id, _name(dest)))
            if done and done[0]["state"] == "done":
                continue
            ok, detail = store_files(files, dest, self.config.ae_title)
            now = time.time()
            self.db.execute("INSERT INTO sends (run_id, destination, state, detail, attempts, updated) "
                            "VALUES (?,?,?,?,1,?) ON CONFLICT(run_id, destination) DO UPDATE SET "
                            "state=excluded.state, detail=excluded.detail, attempts=attempts+1, "
                            "updated=excluded.updated", (run_id, _name(dest), "done" if ok else "failed", detail, now))
            (log.info if ok else log.error)("run %d: C-STORE to %s: %s", run_id, _name(dest), detail)
            all_ok &= ok
        return all_ok

    def retry_failed(self, now: float | None = None) -> None:
        """Send again the runs whose sending failed, at most every :data:`RETRY_AFTER_S`."""
        now = time.time() if now is None else now
        rows = self.db.query("SELECT DISTINCT run_id FROM sends WHERE state='failed' AND attempts < ? AND "
                             "updated <= ?", (MAX_ATTEMPTS, now - RETRY_AFTER_S))
        for row in rows:
            run = self.db.query("SELECT pseudonym FROM runs WHERE id=?", (row["run_id"],))[0]
            folder = self.config.spool / "outbox" / run["pseudonym"] / f"run-{row['run_id']}"
            files = sorted(folder.glob("*.dcm"))
            if not files:
                continue
            if self.send_run(row["run_id"], files):
                self.db.execute("UPDATE runs SET state='done', detail='' WHERE id=?", (row["run_id"],))
