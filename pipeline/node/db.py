"""The node's SQLite database: patients and their pseudonyms, instances, series, sessions, runs, sends.

It lives in the spool (``<spool>/node.sqlite``) because it holds the one link between the
hospital's patient ID and the pseudonym; nothing else on the server keeps it. One connection is
shared by the SCP's association threads and the main loop under a lock (WAL journal, every
change its own transaction, so a crash loses at most the change in flight).

Session states: ``receiving`` (instances still arriving, or arrived after a run), ``waiting``
(complete but the injection record or the patient's sex is missing), ``queued``, ``running``,
``done``, ``failed``. Run states: ``running``, ``exporting``, ``sending``, ``done``, ``failed``,
``interrupted``.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from pathlib import Path

__all__ = ["NodeDB", "SCHEMA"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS patients (
    patient_key TEXT PRIMARY KEY,     -- SHA-256 of PatientID and issuer: spool folder name, no PHI
    pseudonym TEXT UNIQUE NOT NULL,   -- the only id the workflow, results and logs see
    patient_id TEXT NOT NULL,         -- PHI: the hospital's PatientID (never leaves the spool)
    issuer TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS instances (
    sop_uid TEXT PRIMARY KEY, patient_key TEXT NOT NULL, study_uid TEXT NOT NULL, series_uid TEXT NOT NULL,
    sop_class TEXT NOT NULL, modality TEXT NOT NULL, path TEXT NOT NULL, received REAL NOT NULL,
    calling_ae TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS series (
    series_uid TEXT PRIMARY KEY, patient_key TEXT NOT NULL, study_uid TEXT NOT NULL, modality TEXT NOT NULL,
    first_received REAL NOT NULL, last_received REAL NOT NULL, n_instances INTEGER NOT NULL DEFAULT 0,
    session_id INTEGER);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, patient_key TEXT NOT NULL, spect_series TEXT UNIQUE NOT NULL,
    ct_series TEXT NOT NULL, time_point TEXT, state TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '',
    last_received REAL NOT NULL, created REAL NOT NULL, updated REAL NOT NULL, run_id INTEGER,
    dirty INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, patient_key TEXT NOT NULL, pseudonym TEXT NOT NULL,
    state TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '', started REAL NOT NULL, finished REAL,
    exit_code INTEGER, pid INTEGER, command TEXT NOT NULL DEFAULT '', sessions TEXT NOT NULL DEFAULT '',
    latest_instance REAL);
CREATE TABLE IF NOT EXISTS sends (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL, destination TEXT NOT NULL,
    state TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL, UNIQUE (run_id, destination));
"""


class NodeDB:
    """Thread-safe access to the node database at ``path`` (created when missing)."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def query(self, sql: str, args=()) -> list:
        with self._lock:
            return [dict(r) for r in self._conn.execute(sql, args).fetchall()]

    def execute(self, sql: str, args=()) -> int:
        """Run one statement in its own transaction; returns lastrowid."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                cur = self._conn.execute(sql, args)
                self._conn.execute("COMMIT")
                return cur.lastrowid
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def transaction(self):
        """Context manager: ``with db.transaction() as conn: ...`` (one atomic change)."""
        db = self

        class _Tx:
            def __enter__(self):
                db._lock.acquire()
                db._conn.execute("BEGIN IMMEDIATE")
                return db._conn

            def __exit__(self, kind, exc, tb):
                try:
                    db._conn.execute("ROLLBACK" if kind else "COMMIT")
                finally:
                    db._lock.release()
                return False

        return _Tx()

    # -- patients ---------------------------------------------------------------------------

    def pseudonym_for(self, patient_key: str, patient_id: str, issuer: str) -> str:
        """The pseudonym of a patient, created on first sight (``SD`` + 10 random hex digits)."""
        with self.transaction() as conn:
            row = conn.execute("SELECT pseudonym FROM patients WHERE patient_key=?", (patient_key,)).fetchone()
            if row:
                return row["pseudonym"]
            while True:
                pseudonym = "SD" + secrets.token_hex(5).upper()
                if not conn.execute("SELECT 1 FROM patients WHERE pseudonym=?", (pseudonym,)).fetchone():
                    break
            conn.execute("INSERT INTO patients VALUES (?,?,?,?,?)",
                         (patient_key, pseudonym, patient_id, issuer, time.time()))
            return pseudonym

    def pseudonym(self, patient_key: str) -> str | None:
        rows = self.query("SELECT pseudonym FROM patients WHERE patient_key=?", (patient_key,))
        return rows[0]["pseudonym"] if rows else None

    # -- instances --------------------------------------------------------------------------

    def has_instance(self, sop_uid: str) -> bool:
        return bool(self.query("SELECT 1 FROM instances WHERE sop_uid=?", (sop_uid,)))

    def add_instance(self, *, sop_uid, patient_key, study_uid, series_uid, sop_class, modality, path, received,
                     calling_ae="") -> bool:
        """Record a stored instance and touch its series (and session); False when already known."""
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM instances WHERE sop_uid=?", (sop_uid,)).fetchone():
                return False
            conn.execute("INSERT INTO instances VALUES (?,?,?,?,?,?,?,?,?)",
                         (sop_uid, patient_key, study_uid, series_uid, sop_class, modality, str(path), received,
                          calling_ae))
            row = conn.execute("SELECT session_id FROM series WHERE series_uid=?", (series_uid,)).fetchone()
            if row is None:
                conn.execute("INSERT INTO series VALUES (?,?,?,?,?,?,1,NULL)",
                             (series_uid, patient_key, study_uid, modality, received, received))
            else:
                conn.execute("UPDATE series SET last_received=max(last_received, ?), n_instances=n_instances+1 "
                             "WHERE series_uid=?", (received, series_uid))
                if row["session_id"] is not None:
                    _touch_session(conn, row["session_id"], received)
            return True


def _touch_session(conn, session_id: int, received: float) -> None:
    """New data for a session: back to ``receiving`` (or marked dirty while its run goes on)."""
    state = conn.execute("SELECT state FROM sessions WHERE id=?", (session_id,)).fetchone()["state"]
    if state == "running":
        conn.execute("UPDATE sessions SET dirty=1, last_received=max(last_received, ?) WHERE id=?",
                     (received, session_id))
    else:
        conn.execute("UPDATE sessions SET state='receiving', detail='more instances arrived', "
                     "last_received=max(last_received, ?), updated=? WHERE id=?", (received, time.time(), session_id))
