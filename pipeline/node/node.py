"""The node: Storage SCP, session assembly, runs and sends, driven by one main loop.

:meth:`Node.start` reconciles the spool with the database (files written just before a crash),
recovers the runs a restart interrupted and starts the SCP. :meth:`Node.step` is one turn of
the main loop: assemble sessions of quiet patients, queue the complete ones (or let them wait),
finish ended runs, start queued runs, retry failed sends. :meth:`Node.serve` turns it every
``tick_s`` until stopped (SIGTERM/SIGINT in the command).
"""

from __future__ import annotations

import logging
import threading
import time

from pipeline.errors import SpectdoseError

from .config import NodeConfig
from .db import NodeDB
from .runner import Runner
from .scp import StorageSCP
from .send import Sender
from .sessions import assemble_sessions, check_ready
from .spool import Spool

__all__ = ["Node", "setup_logging"]

log = logging.getLogger("spectdose.node")


def setup_logging(config: NodeConfig, stream=True) -> logging.Handler:
    """Log to ``<spool>/logs/node.log`` (and stderr): time, level, message; returns the file handler."""
    config.log_path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(config.log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    if stream and not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
                          for h in log.handlers):
        err = logging.StreamHandler()
        err.setFormatter(logging.Formatter("spectdose node: %(levelname)s %(message)s"))
        log.addHandler(err)
    log.setLevel(logging.INFO)
    return handler


class Node:
    """One DICOM node (see the module docstring)."""

    def __init__(self, config: NodeConfig, tick_s: float = 0.5):
        self.config = config
        self.tick_s = tick_s
        config.spool.mkdir(parents=True, exist_ok=True)
        config.workdir.mkdir(parents=True, exist_ok=True)
        self.db = NodeDB(config.db_path)
        self.spool = Spool(config.spool, self.db, config.min_free_mb)
        self.sender = Sender(config, self.db)
        self.runner = Runner(config, self.db, self.sender)
        self.scp = StorageSCP(config, self.spool)
        self.port = None
        self._stop = threading.Event()
        self._looked_at: dict = {}

    def start(self) -> int:
        """Reconcile, recover and start listening; returns the port."""
        found = self.spool.reconcile()
        if found:
            log.warning("spool: %d file(s) on disk were missing from the database and are now recorded", found)
        self.runner.recover()
        try:
            self.port = self.scp.start()
        except OSError as exc:
            raise SpectdoseError(f"cannot listen on {self.config.bind_address}:{self.config.port} "
                                 f"({exc.strerror or exc})") from None
        return self.port

    def step(self, now: float | None = None) -> None:
        """One turn of the main loop (errors are logged, never stop the node)."""
        for name, action in (("sessions", lambda: assemble_sessions(self.db, self.config, now, self._looked_at)),
                             ("queue", lambda: check_ready(self.db, self.config, now)),
                             ("runs", lambda: self.runner.poll(now)),
                             ("start", lambda: self.runner.start_queued(now)),
                             ("send", lambda: self.sender.retry_failed(now))):
            try:
                action()
            except Exception:  # noqa: BLE001 - the node must go on serving other patients
                log.exception("main loop (%s) failed; continuing", name)

    def serve(self) -> None:
        """Run the main loop until :meth:`stop`."""
        while not self._stop.is_set():
            self.step()
            self._stop.wait(self.tick_s)

    def stop(self, stop_workflows: bool = False) -> None:
        """Stop the loop and the SCP; running workflows keep going unless ``stop_workflows``."""
        self._stop.set()
        self.scp.stop()
        if stop_workflows:
            self.runner.stop_all()

    def close(self) -> None:
        self.db.close()

    def status(self) -> list[dict]:
        """Sessions with their pseudonym, time point, state and detail (no identifiers)."""
        return self.db.query(
            "SELECT p.pseudonym, s.id AS session, s.time_point, s.state, s.detail, s.run_id, "
            "datetime(s.last_received, 'unixepoch') AS last_instance_utc FROM sessions s "
            "JOIN patients p USING (patient_key) ORDER BY s.id")

    def wait_idle(self, timeout_s: float) -> bool:
        """Test helper for callers driving :meth:`step` themselves: wait until no run is active."""
        end = time.time() + timeout_s
        while time.time() < end:
            # "settled" is judged at the time the step starts: judged after it, a series could pass its
            # quiet period between the step (which then had not yet made its session) and the check,
            # and the node looked idle with a session still to be queued (a CI run: the second
            # patient's run started after wait_idle had returned)
            started = time.time()
            self.step()
            last = self.db.query("SELECT max(last_received) AS t FROM series")[0]["t"] or 0.0
            settled = started - last > self.config.quiet_period_s + 3 * self.tick_s
            if settled and not self.runner.active and not self.db.query(
                    "SELECT 1 FROM sessions WHERE state IN ('receiving', 'queued', 'running')"):
                return True
            time.sleep(self.tick_s)
        return False
