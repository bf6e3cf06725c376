"""Checks of command-line values shared by every ``spectdose`` subcommand.

Each raises :class:`pipeline.errors.InputError`, which ``run_stage`` prints as one
line ``spectdose <stage>: error: <file>: <problem>`` with exit code 2:

- :func:`check_patient_id`: the same rule as the workflow's patient sheet
  (``config/patients.schema.yaml``: letters, digits, ``_`` and ``-``, starting
  with a letter or digit, at most 64 characters), so that an id can never name
  a folder outside ``results/`` (no ``/``, no ``..``);
- :func:`require_file` / :func:`require_dir`: a folder given where a file is
  expected (or the reverse) is named, instead of failing later inside a reader;
- :func:`config_section`: one section of the workflow's YAML configuration
  (``--config``), an unreadable file named.
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import InputError

__all__ = ["PATIENT_ID_PATTERN", "PATIENT_ID_MAX_LENGTH", "check_patient_id", "require_file", "require_dir",
           "require_output_dir"]

#: The patient sheet's pattern (config/patients.schema.yaml, ``patient_id``); a test keeps them equal.
PATIENT_ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_-]*$"
PATIENT_ID_MAX_LENGTH = 64


def check_patient_id(patient_id: str) -> str:
    """``patient_id`` when it is a valid pseudonymous id; InputError otherwise."""
    text = str(patient_id)
    if not re.fullmatch(PATIENT_ID_PATTERN, text) or len(text) > PATIENT_ID_MAX_LENGTH:
        raise InputError("--patient-id", f"{text!r} is not a valid patient id (letters, digits, _ and -, "
                         f"starting with a letter or digit, at most {PATIENT_ID_MAX_LENGTH} characters; "
                         "no path separators or '..'), as in the patient sheet")
    return text


def require_file(path, what: str = "file") -> Path:
    """``path`` as a Path when it is an existing regular file (not a folder)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(path, f"is a folder; expected the {what} (a file)")
    if not path.exists():
        raise InputError(path, f"{what} not found")
    return path


def require_dir(path, what: str = "folder") -> Path:
    """``path`` as a Path when it is an existing folder (not a file)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(path, f"is a file; expected the {what} (a folder)")
    if not path.exists():
        raise InputError(path, f"{what} not found")
    return path


def require_output_dir(path) -> Path:
    """``path`` as a Path unless it (or a parent) is an existing file: outputs are folders."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                raise InputError(p, "is a file; the output must be a folder")
            break
    return path


def config_section(path, section: str) -> dict:
    """Section ``section`` of the workflow configuration at ``path`` (empty when ``path`` is None
    or the section is absent); a missing or unreadable file is an :class:`InputError` naming it."""
    if path is None:
        return {}
    import yaml

    path = require_file(path, "configuration")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(path, f"cannot read the configuration ({exc})") from None
    return dict(data.get(section) or {})
