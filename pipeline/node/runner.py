"""Runs: the workflow of one patient at a time, then the DICOM results exported and sent.

A run takes every queued session of a patient (and the sessions already done, so the manifest
lists all scans in arrival order: the first scan stays the reference), links each session's CT
and SPECT into ``<spool>/sessions/<key>/<session>/``, writes the manifest
``<workdir>/manifests/<pseudonym>.yaml`` and a one-row sheet ``<workdir>/sheets/<pseudonym>.tsv``
(pseudonym, manifest, sex, overrides) and starts snakemake for ``results/<pseudonym>/report/report.html``
in its own process group (``--nolock``: the node guarantees one workflow per patient, so runs of
different patients never share outputs). Snakemake redoes only what the new scans change.

When it ends: exit 0 -> export (:func:`pipeline.export.run.export_dicom`) into
``<spool>/outbox/<pseudonym>/run-<id>/`` and C-STORE to every destination (in a thread, so the
node keeps receiving); otherwise the run and its sessions are ``failed`` with the stage's
one-line error, and the node goes on with other patients.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from pipeline.atomic import atomic_dir, write_text
from pipeline.errors import SpectdoseError

from .config import REPO, NodeConfig
from .db import NodeDB
from .sessions import patient_facts, time_point_name

__all__ = ["Runner"]

log = logging.getLogger("spectdose.node")


def _yaml_text(data) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)


class Runner:
    """Starts, watches and finishes the workflow runs of the node."""

    def __init__(self, config: NodeConfig, db: NodeDB, sender=None):
        self.config = config
        self.db = db
        self.sender = sender
        self._procs: dict[int, subprocess.Popen] = {}
        self._finishers: dict[int, threading.Thread] = {}

    # -- start -------------------------------------------------------------------------------

    def start_queued(self, now: float | None = None) -> list[int]:
        """Start a run for each patient with queued sessions and no active run (within the limit)."""
        started = []
        active = self.db.query("SELECT patient_key FROM runs WHERE state IN ('running', 'exporting', 'sending')")
        busy = {r["patient_key"] for r in active}
        running = sum(1 for r in self.db.query("SELECT 1 FROM runs WHERE state='running'"))
        for row in self.db.query("SELECT patient_key, min(id) AS first FROM sessions WHERE state='queued' "
                                 "GROUP BY patient_key ORDER BY first"):
            if running >= self.config.max_parallel_workflows:
                break
            if row["patient_key"] in busy:
                continue
            try:
                started.append(self._start(row["patient_key"], time.time() if now is None else now))
            except (SpectdoseError, OSError, ValueError, TypeError) as exc:
                detail = f"cannot start the workflow: {getattr(exc, 'problem', None) or exc}"
                self.db.execute("UPDATE sessions SET state='failed', detail=?, updated=? WHERE patient_key=? AND "
                                "state='queued'", (detail, time.time(), row["patient_key"]))
                log.error("patient %s: %s", self.db.pseudonym(row["patient_key"]), detail)
                continue
            running += 1
        return started

    def _session_folder(self, key: str, session: dict) -> Path:
        """``<spool>/sessions/<key>/<id>/{ct,spect}/``: hard links to the session's instances.

        Left untouched when it already holds exactly these instances: the folder is an input
        of the session's ingest job, and a new modification time would make snakemake redo it.
        """
        folder = self.config.spool / "sessions" / key / str(session["id"])
        wanted = {kind: {r["sop_uid"]: r["path"] for r in self.db.query(
            "SELECT sop_uid, path FROM instances WHERE series_uid=?", (series,))}
            for kind, series in (("ct", session["ct_series"]), ("spect", session["spect_series"]))}
        if all((folder / kind).is_dir() and {p.stem for p in (folder / kind).iterdir()} == set(files)
               for kind, files in wanted.items()):
            return folder
        with atomic_dir(folder) as tmp:
            for kind, files in wanted.items():
                (tmp / kind).mkdir()
                for sop_uid, path in files.items():
                    target = tmp / kind / f"{sop_uid}.dcm"
                    try:
                        os.link(path, target)
                    except OSError:
                        import shutil

                        shutil.copy2(path, target)
        return folder

    def _name_time_points(self, key: str, sessions: list, facts: dict) -> None:
        import pydicom

        from pipeline.ingest.timing import acquisition_datetime

        taken = {s["time_point"] for s in sessions if s["time_point"]}
        for s in sessions:
            if s["time_point"]:
                continue
            paths = [r["path"] for r in self.db.query("SELECT path FROM instances WHERE series_uid=?",
                                                      (s["spect_series"],))]
            headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths[:1]]
            acq, _ = acquisition_datetime(headers, paths[0])
            injection = facts["injection_datetime"]
            if isinstance(injection, str):
                from pipeline.ingest.timing import parse_iso_datetime

                injection = parse_iso_datetime(injection, self.config.spool / "overrides")
            name = time_point_name(acq, injection, taken)
            taken.add(name)
            s["time_point"] = name
            self.db.execute("UPDATE sessions SET time_point=? WHERE id=?", (name, s["id"]))

    def _write_inputs(self, key: str, pseudonym: str, sessions: list, facts: dict) -> Path:
        wd = self.config.workdir
        manifest = wd / "manifests" / f"{pseudonym}.yaml"
        entries = [{"id": s["time_point"], "dicom": str(self._session_folder(key, s))} for s in sessions]
        write_text(manifest, "# written by spectdose node; do not edit (rewritten at every run)\n"
                   + _yaml_text({"patient_id": pseudonym, "time_points": entries}))
        row = {"patient_id": pseudonym, "input": str(manifest), "sex": facts["sex"]}
        over = facts["overrides"]
        for column, name in (("radionuclide", "radionuclide"), ("injected_mbq", "injected_activity_mbq"),
                             ("injection_datetime", "injection_datetime"), ("vertebra_level", "vertebra_level"),
                             ("reference_time_point", "reference_time_point"),
                             ("calibration_cps_per_mbq", "calibration_cps_per_mbq"),
                             ("absent_organs", "absent_organs")):
            if over.get(name) is not None:
                v = over[name]
                row[column] = ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
        sheet = wd / "sheets" / f"{pseudonym}.tsv"
        write_text(sheet, "\t".join(row) + "\n" + "\t".join(str(v) for v in row.values()) + "\n")
        return sheet

    def command(self, pseudonym: str, sheet: Path) -> list[str]:
        wf = self.config.workflow
        target = f"results/{pseudonym}/report/report.html"
        values = {"python": sys.executable, "workdir": str(self.config.workdir), "sheet": str(sheet),
                  "patient": pseudonym, "target": target, "cores": str(wf.cores)}
        if wf.command:
            return [part.format(**values) for part in wf.command]
        return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                "--directory", str(self.config.workdir), "--profile", str(wf.profile),
                "--configfile", str(wf.configfile), "--config", f"patients={sheet}",
                "--cores", str(wf.cores), "--nolock", target]

    def _start(self, key: str, now: float) -> int:
        pseudonym = self.db.pseudonym(key)
        facts = patient_facts(self.db, self.config, key)
        sessions = self.db.query("SELECT * FROM sessions WHERE patient_key=? AND state IN ('queued', 'done', "
                                 "'failed') ORDER BY id", (key,))
        self._name_time_points(key, sessions, facts)
        sheet = self._write_inputs(key, pseudonym, sessions, facts)
        cmd = self.command(pseudonym, sheet)
        # the queued sessions and those whose last run failed (this run includes them again)
        queued = [s["id"] for s in sessions if s["state"] in ("queued", "failed")]
        latest = max(s["last_received"] for s in sessions if s["state"] == "queued")
        log_path = self.config.workdir / "results" / pseudonym / "logs" / "node-workflow.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.setdefault("MPLBACKEND", "Agg")
        with self.db.transaction() as conn:
            cur = conn.execute("INSERT INTO runs (patient_key, pseudonym, state, started, command, sessions, "
                               "latest_instance) VALUES (?,?,?,?,?,?,?)",
                               (key, pseudonym, "running", now, json.dumps(cmd), json.dumps(queued), latest))
            run_id = cur.lastrowid
            conn.execute(f"UPDATE sessions SET state='running', run_id=?, updated=? WHERE id IN "
                         f"({','.join('?' * len(queued))})", (run_id, now, *queued))
        with open(log_path, "ab") as out:
            out.write(f"\n=== spectdose node run {run_id} ===\n".encode())
            out.flush()
            try:
                proc = subprocess.Popen(cmd, cwd=self.config.workdir, env=env, stdout=out,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            except OSError as exc:
                self._finish(run_id, None, f"cannot start the workflow command {cmd[0]!r}: {exc.strerror or exc}")
                return run_id
        self._procs[run_id] = proc
        self.db.execute("UPDATE runs SET pid=? WHERE id=?", (proc.pid, run_id))
        log.info("patient %s: run %d started for session(s) %s (time points %s); %.2f s after the last instance",
                 pseudonym, run_id, ", ".join(map(str, queued)),
                 ", ".join(s["time_point"] for s in sessions), now - latest)
        return run_id

    # -- watch -------------------------------------------------------------------------------

    def poll(self, now: float | None = None) -> None:
        """Finish the runs whose process ended; stop those past the timeout."""
        now = time.time() if now is None else now
        for run_id, proc in list(self._procs.items()):
            code = proc.poll()
            if code is None:
                started = self.db.query("SELECT started FROM runs WHERE id=?", (run_id,))[0]["started"]
                if now - started > self.config.workflow.timeout_min * 60:
                    _kill_group(proc.pid)
                    proc.wait(timeout=30)
                    self._finish(run_id, None, "timed out after "
                                 f"{self.config.workflow.timeout_min:g} min")
                    del self._procs[run_id]
                continue
            del self._procs[run_id]
            self._finish(run_id, code, "")

    def _finish(self, run_id: int, code: int | None, why: str) -> None:
        run = self.db.query("SELECT * FROM runs WHERE id=?", (run_id,))[0]
        now = time.time()
        if code == 0:
            self.db.execute("UPDATE runs SET state='exporting', exit_code=0, finished=? WHERE id=?", (now, run_id))
            self._set_sessions(run_id, "done", "")
            log.info("patient %s: run %d finished (%.1f s)", run["pseudonym"], run_id, now - run["started"])
            self._finish_in_thread(run_id)
            return
        detail = why or f"workflow exit code {code}{_stage_error(self.config.workdir / 'results' / run['pseudonym'])}"
        self.db.execute("UPDATE runs SET state='failed', exit_code=?, finished=?, detail=? WHERE id=?",
                        (code, now, detail, run_id))
        self._set_sessions(run_id, "failed", detail)
        log.error("patient %s: run %d failed: %s", run["pseudonym"], run_id, detail)

    def _set_sessions(self, run_id: int, state: str, detail: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE sessions SET state=CASE WHEN dirty=1 THEN 'receiving' ELSE ? END, dirty=0, "
                         "detail=?, updated=? WHERE run_id=? AND state='running'", (state, detail, time.time(), run_id))

    def _finish_in_thread(self, run_id: int) -> None:
        thread = threading.Thread(target=self.export_and_send, args=(run_id,), name=f"run-{run_id}", daemon=True)
        self._finishers[run_id] = thread
        thread.start()

    def export_and_send(self, run_id: int) -> None:
        """Export the results of a finished run and send them (records every outcome)."""
        from pipeline.export.run import export_dicom

        run = self.db.query("SELECT * FROM runs WHERE id=?", (run_id,))[0]
        out = self.config.spool / "outbox" / run["pseudonym"] / f"run-{run_id}"
        try:
            result = export_dicom(self.config.workdir / "results" / run["pseudonym"],
                                  self.config.spool / "dicom" / run["patient_key"], out)
        except (SpectdoseError, OSError, ValueError) as exc:
            detail = f"DICOM export failed: {getattr(exc, 'problem', None) or exc}"
            self.db.execute("UPDATE runs SET state='failed', detail=? WHERE id=?", (detail, run_id))
            log.error("patient %s: run %d %s", run["pseudonym"], run_id, detail)
            return
        for note in result.skipped:
            log.warning("patient %s: run %d export skipped %s", run["pseudonym"], run_id, note)
        self.db.execute("UPDATE runs SET state='sending' WHERE id=?", (run_id,))
        ok = self.sender.send_run(run_id, list(result.files)) if self.sender else True
        self.db.execute("UPDATE runs SET state=? WHERE id=?", ("done" if ok else "failed", run_id))
        if not ok:
            self.db.execute("UPDATE runs SET detail='sending the results failed (retried)' WHERE id=?", (run_id,))

    def wait_finishers(self, timeout: float = 60.0) -> None:
        for thread in list(self._finishers.values()):
            thread.join(timeout)

    @property
    def active(self) -> bool:
        return bool(self._procs) or any(t.is_alive() for t in self._finishers.values())

    # -- restart -----------------------------------------------------------------------------

    def recover(self) -> None:
        """After a restart: stop orphaned workflows, requeue their sessions, finish exports and sends."""
        for run in self.db.query("SELECT * FROM runs WHERE state='running'"):
            if run["pid"] and _is_our_process(run["pid"], run["pseudonym"]):
                _kill_group(run["pid"])
            self.db.execute("UPDATE runs SET state='interrupted', detail='node restarted during the run', finished=? "
                            "WHERE id=?", (time.time(), run["id"]))
            with self.db.transaction() as conn:
                conn.execute("UPDATE sessions SET state=CASE WHEN dirty=1 THEN 'receiving' ELSE 'queued' END, "
                             "dirty=0, detail='requeued after a node restart' WHERE run_id=? AND state='running'",
                             (run["id"],))
            log.warning("patient %s: run %d was interrupted by a node restart; its sessions are queued again",
                        run["pseudonym"], run["id"])
        for run in self.db.query("SELECT * FROM runs WHERE state IN ('exporting', 'sending')"):
            log.info("patient %s: run %d: finishing the export and sending after a restart", run["pseudonym"], run["id"])
            self._finish_in_thread(run["id"])

    def stop_all(self) -> None:
        for proc in self._procs.values():
            _kill_group(proc.pid)


def _kill_group(pid: int, grace_s: float = 10.0) -> None:
    """Stop the process group the node started for one run (its own session, id = ``pid``).

    SIGTERM first (snakemake then stops its jobs and marks their outputs incomplete), SIGKILL
    when the group is still there after ``grace_s``.
    """
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    end = time.monotonic() + grace_s
    while time.monotonic() < end:
        try:
            os.waitpid(pid, os.WNOHANG)  # reap it when it is our child
        except ChildProcessError:
            pass
        try:
            os.killpg(pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _is_our_process(pid: int, pseudonym: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return pseudonym in cmdline


def _stage_error(patient_dir: Path) -> str:
    """``: <the last stage's one-line error>`` from the patient's logs, or ``""``."""
    lines = []
    logs = patient_dir / "logs"
    if logs.is_dir():
        for path in sorted(logs.glob("*.log"), key=lambda p: p.stat().st_mtime):
            lines += [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ": error: " in ln]
    return f": {lines[-1]}" if lines else ""
