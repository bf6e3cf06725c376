"""A real single-node Slurm cluster in a temporary folder, for tests.

Debian's ``slurm-wlm`` and ``munge`` (installed with apt-get when missing), started as root with
everything (munge socket, state, spool, logs, pid files) under one folder; clients find it
through ``SLURM_CONF``. The settings and the workarounds are those of
``../shared/notes/slurm.md``: private munge socket, cons_tres with ``DefMemPerCPU``, no cgroups,
no accounting, ``MinJobAge=600`` (squeue status checks need >= 120 s), and an ``srun`` wrapper
first on ``PATH`` that restores ``SLURM_CONF`` (the job-step plugin removes it before srun).
Daemons are stopped by the pids in their pid files, never by name.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
BINARIES = ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "sinfo", "srun", "scancel")
MUNGE_KEY = Path("/etc/munge/munge.key")


def why_unavailable() -> str | None:
    """Why a cluster cannot be started here (``None`` when it can, perhaps after apt-get)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root to start slurmctld, slurmd and munged"
    if all(shutil.which(b) or shutil.which(b, path="/usr/sbin:/usr/bin") for b in BINARIES):
        return None
    if shutil.which("apt-get") is None:
        return "slurm-wlm/munge are not installed and apt-get is not available"
    return None


def _which(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if found is None:
        raise RuntimeError(f"{name} not found after installing {' '.join(PACKAGES)}")
    return found


def ensure_installed(timeout_s: float = 900) -> None:
    """apt-get install slurm-wlm and munge unless every binary is already there."""
    if all(shutil.which(b) or shutil.which(b, path="/usr/sbin:/usr/bin") for b in BINARIES) \
            and MUNGE_KEY.exists():
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", *PACKAGES]):
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    if not MUNGE_KEY.exists():
        subprocess.run([_which("mungekey"), "--create"], check=True, capture_output=True, timeout=60)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mem_total_mb() -> int:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 4000


class SlurmCluster:
    """Start/stop one slurmctld + one slurmd (node ``localhost``, partition ``debug``)."""

    partition = "debug"

    def __init__(self, root: Path):
        self.root = Path(root)
        self.conf = self.root / "slurm.conf"
        self.bin = self.root / "bin"
        self.cpus = os.cpu_count() or 1
        self.real_memory_mb = min(8000, int(0.8 * _mem_total_mb()))
        self._pidfiles = {
            "slurmd": self.root / "slurmd.pid",
            "slurmctld": self.root / "slurmctld.pid",
            "munged": self.root / "munged.pid",
        }

    # -- environment -------------------------------------------------------------------------
    def env(self, base: dict | None = None) -> dict:
        """Environment for clients: SLURM_CONF set and the srun wrapper first on PATH."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        return env

    def run(self, *cmd, timeout_s: float = 30, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(list(map(str, cmd)), env=self.env(), capture_output=True, text=True,
                                timeout=timeout_s)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({result.returncode}): "
                               f"{result.stdout}{result.stderr}\n{self.daemon_logs()}")
        return result

    # -- configuration -----------------------------------------------------------------------
    def _write_config(self) -> None:
        r = self.root
        for sub in ("state", "spool", "bin"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        self.socket = r / "munge.socket.2"
        lines = [
            "ClusterName=spectdosetest",
            "SlurmctldHost=localhost",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.socket}",
            f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={self._pidfiles['slurmctld']}",
            f"SlurmdPidFile={self._pidfiles['slurmd']}",
            f"SlurmctldLogFile={r / 'slurmctld.log'}",
            f"SlurmdLogFile={r / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "MpiDefault=none",
            "ReturnToService=2",
            "MinJobAge=600",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "DefMemPerCPU=1000",
            f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} "
            f"RealMemory={self.real_memory_mb} State=UNKNOWN",
            f"PartitionName={self.partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        # The slurm job-step executor drops SLURM_* (SLURM_CONF too) before calling srun.
        srun = self.bin / "srun"
        srun.write_text(f"#!/bin/sh\nSLURM_CONF={self.conf}\nexport SLURM_CONF\n"
                        f"exec {_which('srun')} \"$@\"\n")
        srun.chmod(0o755)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout_s: float = 60) -> None:
        self._write_config()
        r = self.root
        subprocess.run([_which("munged"), "--force", f"--key-file={MUNGE_KEY}",
                        f"--socket={self.socket}", f"--pid-file={self._pidfiles['munged']}",
                        f"--log-file={r / 'munged.log'}", f"--seed-file={r / 'munge.seed'}"],
                       check=True, capture_output=True, timeout=30)
        self.run(_which("slurmctld"), "-f", self.conf, "-c")
        self.run(_which("slurmd"), "-f", self.conf, "-N", "localhost")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.run("sinfo", "-h", "-o", "%t", check=False).stdout.strip()
            if state in ("idle", "mix", "alloc"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"the node did not become idle within {timeout_s} s "
                           f"(sinfo: {state!r})\n{self.daemon_logs()}")

    def daemon_logs(self, tail: int = 30) -> str:
        parts = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            path = self.root / name
            if path.exists():
                lines = path.read_text(errors="replace").splitlines()[-tail:]
                parts.append(f"--- {name}\n" + "\n".join(lines))
        return "\n".join(parts)

    def stop(self, timeout_s: float = 20) -> None:
        """Cancel our jobs, then stop slurmd, slurmctld and munged by their pids."""
        if self.conf.exists() and self._pid("slurmctld"):
            try:
                self.run("scancel", "--partition", self.partition, check=False, timeout_s=15)
            except (subprocess.TimeoutExpired, OSError):
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self._pid(name)
            if pid is not None:
                _terminate(pid, timeout_s)

    def _pid(self, name: str) -> int | None:
        try:
            return int(self._pidfiles[name].read_text().strip())
        except (OSError, ValueError):
            return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _terminate(pid: int, timeout_s: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
