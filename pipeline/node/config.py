"""The node's configuration (``node.yaml``): frozen dataclasses read and checked from YAML.

Example (every key; only ``spool`` and ``workdir`` are required)::

    ae_title: SPECTDOSE          # our AE title (1-16 characters)
    port: 11112                  # TCP port of the Storage SCP
    bind_address: 0.0.0.0        # interface to listen on (127.0.0.1: this machine only)
    allowed_callers:             # who may send (C-STORE) and echo; empty list = anyone
      - {ae_title: SPECT_CT1, host: 10.0.0.21}
      - {ae_title: PACS, host: "*"}          # any host with this AE title
    spool: /srv/spectdose/spool  # PHI lives here: received DICOM, the database, exports
    workdir: /srv/spectdose/work # snakemake working directory: results/<pseudonym>/ (no PHI)
    quiet_period_s: 120          # a session is complete when nothing arrived for this long
    min_free_mb: 2048            # refuse instances (status A700) below this much free disk
    max_parallel_workflows: 1    # patients run at the same time (one workflow per patient)
    sex_default: null            # male/female when PatientSex is missing (else the session waits)
    workflow:
      profile: profiles/local    # or profiles/slurm (relative to the repository)
      cores: 2
      configfile: config/config.yaml
      timeout_min: 240
      command: null              # optional argv list replacing snakemake (placeholders below)
    destinations:                # where the DICOM results go (C-STORE)
      - {ae_title: PACS, host: 10.0.0.5, port: 104}

``workflow.command`` placeholders: ``{python}``, ``{workdir}``, ``{sheet}``, ``{patient}``,
``{target}``, ``{cores}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import InputError

__all__ = ["Caller", "Destination", "WorkflowSettings", "NodeConfig", "read_config", "REPO"]

REPO = Path(__file__).resolve().parents[2]
_AE = re.compile(r"^[ -~]{1,16}$")


@dataclass(frozen=True)
class Caller:
    """A sender allowed to associate: AE title and host (``"*"`` = any host)."""

    ae_title: str
    host: str = "*"

    def allows(self, ae_title: str, host: str) -> bool:
        return ae_title.strip() == self.ae_title and self.host in ("*", host)


@dataclass(frozen=True)
class Destination:
    """A DICOM node the results are sent to with C-STORE."""

    ae_title: str
    host: str
    port: int


@dataclass(frozen=True)
class WorkflowSettings:
    """How the node starts the workflow of one patient.

    Attributes
    ----------
    profile : pathlib.Path
        Snakemake profile folder (``profiles/local`` or ``profiles/slurm``).
    cores : int
    configfile : pathlib.Path
    timeout_min : float
        A run still going after this many minutes is stopped and recorded as failed.
    command : tuple of str or None
        Replaces the snakemake command line (site wrappers); placeholders as in the module doc.
    """

    profile: Path = REPO / "profiles" / "local"
    cores: int = 2
    configfile: Path = REPO / "config" / "config.yaml"
    timeout_min: float = 240.0
    command: tuple | None = None


@dataclass(frozen=True)
class NodeConfig:
    """Everything ``spectdose node`` needs (see the module docstring for the YAML keys)."""

    spool: Path
    workdir: Path
    ae_title: str = "SPECTDOSE"
    port: int = 11112
    bind_address: str = "0.0.0.0"
    allowed_callers: tuple = ()
    quiet_period_s: float = 120.0
    min_free_mb: float = 2048.0
    max_parallel_workflows: int = 1
    sex_default: str | None = None
    workflow: WorkflowSettings = field(default_factory=WorkflowSettings)
    destinations: tuple = ()

    @property
    def db_path(self) -> Path:
        return self.spool / "node.sqlite"

    @property
    def log_path(self) -> Path:
        return self.spool / "logs" / "node.log"


_TOP = {"ae_title", "port", "bind_address", "allowed_callers", "spool", "workdir", "quiet_period_s", "min_free_mb",
        "max_parallel_workflows", "sex_default", "workflow", "destinations"}
_WORKFLOW = {"profile", "cores", "configfile", "timeout_min", "command"}


def _ae(path, value, where) -> str:
    if not isinstance(value, str) or not _AE.match(value.strip()) or "\\" in value:
        raise InputError(path, f"{where}: AE title must be 1-16 printable characters, got {value!r}")
    return value.strip()


def _number(path, data, key, default, kind=float, minimum=0):
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise InputError(path, f"{key} must be a number >= {minimum}, got {value!r}")
    return kind(value)


def _path(base: Path, value, path, key) -> Path:
    if not isinstance(value, str) or not value:
        raise InputError(path, f"{key} must be a path")
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def read_config(path) -> NodeConfig:
    """Read and check ``node.yaml``; relative paths are relative to the file's folder.

    Raises
    ------
    InputError
        Naming the file and the key at fault.
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "node configuration not found") from None
    except yaml.YAMLError as exc:
        raise InputError(path, f"not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(path, "node configuration must be a YAML mapping")
    unknown = sorted(set(data) - _TOP)
    if unknown:
        raise InputError(path, f"unknown key(s): {', '.join(unknown)}")
    for key in ("spool", "workdir"):
        if key not in data:
            raise InputError(path, f"`{key}` is required")
    base = path.resolve().parent
    callers = []
    for n, item in enumerate(data.get("allowed_callers") or []):
        if not isinstance(item, dict) or "ae_title" not in item:
            raise InputError(path, f"allowed_callers[{n}] needs ae_title (and optionally host)")
        callers.append(Caller(_ae(path, item["ae_title"], f"allowed_callers[{n}]"), str(item.get("host", "*"))))
    destinations = []
    for n, item in enumerate(data.get("destinations") or []):
        if not isinstance(item, dict) or not {"ae_title", "host", "port"} <= set(item):
            raise InputError(path, f"destinations[{n}] needs ae_title, host and port")
        destinations.append(Destination(_ae(path, item["ae_title"], f"destinations[{n}]"), str(item["host"]),
                                        _number(path, item, "port", None, int, 1)))
    wf = data.get("workflow") or {}
    if not isinstance(wf, dict) or set(wf) - _WORKFLOW:
        raise InputError(path, f"workflow: unknown key(s) {sorted(set(wf) - _WORKFLOW) if isinstance(wf, dict) else wf}")
    command = wf.get("command")
    if command is not None and (not isinstance(command, list) or not all(isinstance(c, str) for c in command)):
        raise InputError(path, "workflow.command must be a list of strings")
    defaults = WorkflowSettings()
    workflow = WorkflowSettings(
        profile=_path(REPO, wf["profile"], path, "workflow.profile") if "profile" in wf else defaults.profile,
        cores=_number(path, wf, "cores", defaults.cores, int, 1),
        configfile=_path(REPO, wf["configfile"], path, "workflow.configfile") if "configfile" in wf
        else defaults.configfile,
        timeout_min=_number(path, wf, "timeout_min", defaults.timeout_min),
        command=tuple(command) if command else None)
    sex = data.get("sex_default")
    if sex not in (None, "male", "female"):
        raise InputError(path, f"sex_default must be male, female or null, got {sex!r}")
    return NodeConfig(
        spool=_path(base, data["spool"], path, "spool"), workdir=_path(base, data["workdir"], path, "workdir"),
        ae_title=_ae(path, data.get("ae_title", "SPECTDOSE"), "ae_title"),
        port=_number(path, data, "port", 11112, int, 0), bind_address=str(data.get("bind_address", "0.0.0.0")),
        allowed_callers=tuple(callers), quiet_period_s=_number(path, data, "quiet_period_s", 120.0),
        min_free_mb=_number(path, data, "min_free_mb", 2048.0),
        max_parallel_workflows=_number(path, data, "max_parallel_workflows", 1, int, 1),
        sex_default=sex, workflow=workflow, destinations=tuple(destinations))
