"""Helpers of the node tests (importable by name: a test module must not import ``conftest``,
whose name every test folder shares)."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import yaml

import node_factory as fac

HERE = Path(__file__).resolve().parent


def write_config(root: Path, receiver_port: int | None = None, **extra) -> Path:
    data = {"ae_title": "SPECTDOSE", "port": 0, "bind_address": "127.0.0.1", "spool": "spool",
            "workdir": "work", "quiet_period_s": 0.2, "min_free_mb": 1,
            "allowed_callers": [{"ae_title": "SCANNER", "host": "127.0.0.1"}, {"ae_title": "OTHERHOST", "host": "10.9.9.9"}],
            "workflow": {"command": [sys.executable, str(HERE / "fake_workflow.py"), "{workdir}", "{sheet}",
                                     "{patient}"], "timeout_min": 2}}
    if receiver_port:
        data["destinations"] = [{"ae_title": "TESTPACS", "host": "127.0.0.1", "port": receiver_port}]
    data.update(extra)
    path = root / "node.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class Harness:
    """A started node, its receiver (PACS stand-in) and helpers."""

    def __init__(self, root: Path, receiver: fac.Receiver, **extra):
        from pipeline.node.config import read_config
        from pipeline.node.node import Node, setup_logging

        self.root = root
        self.receiver = receiver
        self.config = read_config(write_config(root, self.receiver.port, **extra))
        self._handler = setup_logging(self.config, stream=False)
        self.node = Node(self.config, tick_s=0.05)
        self.port = self.node.start()

    def restart(self, **extra):
        """Stop this node (without waiting for anything) and start a new one on the same spool."""
        from pipeline.node.config import read_config
        from pipeline.node.node import Node

        self.node.stop()
        self.node.close()
        if extra:
            self.config = read_config(write_config(self.root, self.receiver.port, **extra))
        self.node = Node(self.config, tick_s=0.05)
        self.port = self.node.start()

    def send(self, datasets, **kw):
        return fac.send(self.port, datasets, **kw)

    def run_until_idle(self, timeout_s=60.0):
        assert self.node.wait_idle(timeout_s), self.node.status()
        self.node.runner.wait_finishers(60)
        self.node.step()

    def runs(self) -> list[dict]:
        path = self.config.workdir / "runs.jsonl"
        return [json.loads(ln) for ln in path.read_text().splitlines()] if path.is_file() else []

    def log_text(self) -> str:
        return self.config.log_path.read_text(encoding="utf-8") if self.config.log_path.is_file() else ""

    def close(self):
        self.node.stop(stop_workflows=True)
        self.node.close()
        logging.getLogger("spectdose.node").removeHandler(self._handler)
        self._handler.close()


def wait_for(predicate, timeout_s=20.0, step=None):
    end = time.time() + timeout_s
    while time.time() < end:
        if step:
            step()
        if predicate():
            return True
        time.sleep(0.05)
    return False
