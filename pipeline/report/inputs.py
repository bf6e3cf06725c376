"""Defensive reading of what the stages wrote: every reader returns ``(data, None)`` or ``(None, why)``.

The report is built at any point of a run and from results of older versions, so a missing,
unreadable or oddly shaped file never stops it: the section that needs the file says why it is
not shown.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

__all__ = ["read_json", "read_csv", "as_float", "time_points", "organ_label"]


def _name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def read_json(path):
    """``(data, None)`` for a readable JSON file, else ``(None, reason)``."""
    path = Path(path)
    if not path.is_file():
        return None, f"{_name(path)} was not written"
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{_name(path)} is unreadable ({exc})"


def read_csv(path):
    """``(rows as dicts, None)`` for a readable CSV file, else ``(None, reason)``."""
    path = Path(path)
    if not path.is_file():
        return None, f"{_name(path)} was not written"
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle)), None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return None, f"{_name(path)} is unreadable ({exc})"


def as_float(value):
    """``value`` as a finite float, or ``None`` (empty CSV cell, text, NaN, missing)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def time_points(pdir: Path) -> list[tuple[str, float | None]]:
    """``(id, time after injection in h)`` of every scan, in time order.

    From ``kinetics/fits.json``, else from ``ingest/<tp>/timepoint.json``.
    """
    fits, _ = read_json(pdir / "kinetics" / "fits.json")
    found = []
    if isinstance(fits, dict) and isinstance(fits.get("time_points"), list):
        found = [(str(tp.get("id")), as_float(tp.get("time_h")))
                 for tp in fits["time_points"] if isinstance(tp, dict)]
    elif (pdir / "ingest").is_dir():
        for folder in sorted(p for p in (pdir / "ingest").iterdir() if p.is_dir()):
            record, _ = read_json(folder / "timepoint.json")
            if isinstance(record, dict):
                found.append((folder.name, as_float(record.get("time_h"))))
    return sorted(found, key=lambda t: (t[1] is None, t[1] or 0.0))


_ORGAN_NAMES = {
    "kidney_left": "Left kidney",
    "kidney_right": "Right kidney",
    "kidneys": "Kidneys",
    "liver": "Liver",
    "spleen": "Spleen",
    "marrow_L2L4": "L2-L4 marrow VOI",
    "red_marrow": "Red marrow",
    "vertebrae_L2L4": "L2-L4 vertebrae",
    "body": "Body (in field of view)",
}


def organ_label(name: str) -> str:
    """A structure name as a reader expects it (``kidney_left`` -> ``Left kidney``)."""
    name = str(name)
    if name in _ORGAN_NAMES:
        return _ORGAN_NAMES[name]
    if name.startswith("lesion_"):
        return "Lesion " + name.split("_", 1)[1]
    return name.replace("_", " ").capitalize()
