"""Where atlas subjects are kept: a folder of labelled CTs, or the ICRP-110 OpenDose archive.

A folder holds one sub-folder per subject, ``<name>/{ct,labels}.nii.gz`` (HU; DESIGN label ids,
plus :data:`pipeline.segment.atlas.ATLAS_VERTEBRAE`) and ``subject.json`` (name, source).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..imageio import read_image, write_image
from .atlas import AtlasSubject

__all__ = ["write_atlas_subject", "read_atlas", "resolve_atlas_source", "load_atlas"]


def write_atlas_subject(folder, subject: AtlasSubject) -> Path:
    """Write one subject as ``<folder>/<name>/{ct,labels}.nii.gz`` and ``subject.json``."""
    out = Path(folder) / subject.name
    out.mkdir(parents=True, exist_ok=True)
    write_image(out / "ct.nii.gz", subject.ct, quantity="CT", dtype=np.int16)
    write_image(out / "labels.nii.gz", subject.labels, quantity="labels", dtype=np.uint8)
    (out / "subject.json").write_text(json.dumps({"name": subject.name, "source": subject.source}, indent=1))
    return out


def read_atlas(folder) -> list[AtlasSubject]:
    """All subjects of an atlas folder (sub-folders with ``ct.nii.gz`` and ``labels.nii.gz``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "atlas folder not found")
    subjects = []
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        if not (d / "ct.nii.gz").is_file() or not (d / "labels.nii.gz").is_file():
            continue
        ct, _ = read_image(d / "ct.nii.gz", unit="HU")
        lab, _ = read_image(d / "labels.nii.gz", unit="label")
        meta = json.loads((d / "subject.json").read_text()) if (d / "subject.json").is_file() else {}
        subjects.append(AtlasSubject(d.name, ct, lab, meta.get("source", "")))
    if not subjects:
        raise InputError(folder, "atlas folder holds no subject (<name>/ct.nii.gz + labels.nii.gz)")
    return subjects


def resolve_atlas_source(source):
    """Where the atlas comes from: a folder, the ICRP-110 OpenDose zip, or nothing.

    ``source`` ``None`` or ``"none"``: no atlas. ``"auto"``: the path in the environment
    variable ``SPECTDOSE_ATLAS`` when set, else the OpenDose ICRP-110 zip at
    ``../shared/data/icrp110/Input_GateLab_2019-04-02.zip`` beside the spectdose folder
    when it is there, else no atlas. Any other value: that path (it must exist).

    Returns
    -------
    Path or None
    """
    import os

    if source is None or str(source).lower() == "none":
        return None
    if str(source).lower() == "auto":
        env = os.environ.get("SPECTDOSE_ATLAS")
        if env:
            return resolve_atlas_source(env)
        from sample_data.icrp110 import default_zip_path

        p = default_zip_path()
        return p if p.is_file() else None
    p = Path(source)
    if not p.exists():
        raise InputError(p, "atlas not found (a folder of <name>/ct.nii.gz + labels.nii.gz, or the ICRP-110 zip)")
    return p


def load_atlas(source) -> tuple:
    """Atlas subjects from :func:`resolve_atlas_source` (empty tuple: no atlas).

    A ``.zip`` is read as the OpenDose ICRP-110 archive (both adult phantoms,
    :func:`sample_data.icrp110.atlas_subjects`); a folder with :func:`read_atlas`.
    """
    p = resolve_atlas_source(source)
    if p is None:
        return ()
    if p.is_file() and p.suffix == ".zip":
        from sample_data.icrp110 import atlas_subjects

        try:
            return tuple(atlas_subjects(p))
        except (KeyError, OSError, ValueError) as exc:
            raise InputError(p, f"not a readable ICRP-110 OpenDose archive ({exc})") from None
    return tuple(read_atlas(p))
