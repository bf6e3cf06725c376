"""A viewer bundle: CT, dose and labels that open together and aligned in ITK-SNAP and 3D Slicer.

Written into ``report/viewer/``:

- ``<patient>.itksnap``: an ITK-SNAP workspace (XML registry) with the reference CT (the
  registration's ``reference_ct.nii.gz``, else the reference time point's CT) as main
  image, the dose on the CT grid as an overlay with the Jet colour map, and the label map as
  segmentation. Paths are absolute plus ``SaveLocation``, so ITK-SNAP also finds the files when
  the whole results folder is moved (it then resolves them relative to the workspace).
- ``itksnap_labels.txt``: ITK-SNAP label descriptions (names and colours of the labels).
- ``labels.seg.nrrd``: the label map as a 3D Slicer segmentation (one segment per label, with
  name and colour), in LPS as NRRD requires, same geometry as the CT.
- ``labels.ctbl``: a 3D Slicer colour table of the labels (for loading the NIfTI labels as a
  label map instead).

The dose itself stays ``dose/dose_ct.nii.gz`` (Gy, CT grid): both viewers read NIfTI.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from .inputs import read_json

__all__ = ["write_viewer_bundle", "label_colours", "nrrd_header", "itksnap_workspace"]

#: RGB (0-255) per fixed label id; lesions (100+) cycle through the last entries.
_COLOURS = {1: (230, 120, 40), 2: (240, 170, 60), 3: (150, 90, 60), 4: (170, 60, 170),
            5: (220, 40, 40), 6: (240, 240, 200), 7: (120, 160, 200)}
_LESION_COLOURS = ((250, 250, 0), (0, 220, 220), (255, 0, 255), (80, 220, 80))


def label_colours(vocabulary: dict) -> dict:
    """Label id -> (name, (r, g, b)) for a label vocabulary ``{id: name}``."""
    out = {}
    for key, name in sorted(vocabulary.items(), key=lambda kv: int(kv[0])):
        lid = int(key)
        colour = _COLOURS.get(lid) or _LESION_COLOURS[lid % len(_LESION_COLOURS)]
        out[lid] = (str(name), colour)
    return out


def _lps_geometry(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(3x3 axis vectors as columns, origin) in LPS mm from a RAS affine."""
    flip = np.diag([-1.0, -1.0, 1.0])
    return flip @ affine[:3, :3], flip @ affine[:3, 3]


def _vec(values) -> str:
    return "(" + ",".join(f"{float(v):.10g}" for v in values) + ")"


def nrrd_header(shape, affine: np.ndarray, dtype: str, fields: dict) -> str:
    """NRRD 4 header of a 3-D gzip-encoded volume on the grid ``affine`` (RAS), with ``key:=value`` fields."""
    axes, origin = _lps_geometry(affine)
    lines = ["NRRD0004", f"type: {dtype}", "dimension: 3", "space: left-posterior-superior",
             "sizes: " + " ".join(str(int(n)) for n in shape),
             "space directions: " + " ".join(_vec(axes[:, i]) for i in range(3)),
             "kinds: domain domain domain", "endian: little", "encoding: gzip",
             f"space origin: {_vec(origin)}"]
    lines += [f"{key}:={value}" for key, value in fields.items()]
    return "\n".join(lines) + "\n\n"


def _write_seg_nrrd(path: Path, labels: np.ndarray, affine: np.ndarray, colours: dict) -> None:
    from ..atomic import atomic_path

    present = set(np.unique(labels).tolist()) - {0}
    fields = {}
    extent = " ".join(f"0 {n - 1}" for n in labels.shape)
    for seg, (lid, (name, rgb)) in enumerate((k, v) for k, v in colours.items() if k in present):
        fields.update({f"Segment{seg}_ID": name, f"Segment{seg}_Name": name,
                       f"Segment{seg}_Color": " ".join(f"{c / 255:.4g}" for c in rgb),
                       f"Segment{seg}_LabelValue": lid, f"Segment{seg}_Layer": 0,
                       f"Segment{seg}_Extent": extent})
    fields.update({"Segmentation_MasterRepresentation": "Binary labelmap",
                   "Segmentation_ContainedRepresentationNames": "Binary labelmap|",
                   "Segmentation_ReferenceImageExtentOffset": "0 0 0"})
    data = np.asarray(labels, dtype="<u2").tobytes(order="F")  # NRRD: first axis fastest
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(nrrd_header(labels.shape, affine, "unsigned short", fields).encode("ascii"))
            handle.write(gzip.compress(data, compresslevel=6))


def itksnap_workspace(save_dir: Path, ct: Path, dose: Path, labels: Path, dose_max_gy: float) -> str:
    """ITK-SNAP workspace XML: CT main image, dose overlay (Jet, 0 to ``dose_max_gy``), labels."""
    def entry(key, value, indent):
        return f'{" " * indent}<entry key={quoteattr(key)} value={quoteattr(str(value))} />'

    def layer(index, path, role, extra):
        lines = [f'    <folder key="Layer[{index:03d}]" >', entry("AbsolutePath", path.resolve(), 6),
                 entry("Role", role, 6), entry("Tags", "", 6)]
        return lines + extra + ["    </folder>"]

    dose_meta = ['      <folder key="LayerMetaData" >', entry("Alpha", 0.5, 8),
                 entry("CustomNickName", f"Dose (Gy), 0-{dose_max_gy:.3g}", 8), entry("Sticky", 1, 8),
                 entry("Visible", 1, 8), '        <folder key="DisplayMapping" >',
                 '          <folder key="ColorMap" >', entry("Preset", "Jet", 12), "          </folder>",
                 "        </folder>", "      </folder>"]
    ct_meta = ['      <folder key="LayerMetaData" >', entry("CustomNickName", "CT (HU)", 8), "      </folder>"]
    lines = ['<?xml version="1.0" encoding="UTF-8" ?>',
             "<!-- ITK-SNAP workspace written by spectdose: CT, dose (Gy) and labels on the CT grid -->",
             "<!DOCTYPE registry [", "<!ELEMENT registry (entry*,folder*)>", "<!ELEMENT folder (entry*,folder*)>",
             "<!ELEMENT entry EMPTY>", "<!ATTLIST folder key CDATA #REQUIRED>",
             "<!ATTLIST entry key CDATA #REQUIRED>", "<!ATTLIST entry value CDATA #REQUIRED>", "]>",
             "<registry>", entry("SaveLocation", Path(save_dir).resolve(), 2), entry("Version", "20190612", 2),
             '  <folder key="Layers" >']
    lines += layer(0, ct, "MainRole", ct_meta)
    lines += layer(1, dose, "OverlayRole", dose_meta)
    lines += layer(2, labels, "SegmentationRole", [])
    lines += ["  </folder>", "</registry>"]
    return "\n".join(lines) + "\n"


def write_viewer_bundle(patient_dir, out_dir) -> tuple[Path | None, str | None]:
    """Write the viewer bundle of ``patient_dir`` into ``out_dir``; ``(folder, None)`` or ``(None, why)``."""
    from ..atomic import atomic_dir
    from ..errors import SpectdoseError
    from ..imageio import read_image

    from .dosefig import ct_candidates

    pdir = Path(patient_dir)
    ct = next((p for p in ct_candidates(pdir) if p.is_file()), ct_candidates(pdir)[0])
    dose = pdir / "dose" / "dose_ct.nii.gz"
    labels = pdir / "segment" / "labels.nii.gz"
    for path in (ct, dose, labels):
        if not path.is_file():
            return None, f"{path.parent.name}/{path.name} was not written"
    vocab, _ = read_json(pdir / "segment" / "labels.json")
    vocabulary = vocab.get("labels") if isinstance(vocab, dict) and isinstance(vocab.get("labels"), dict) else \
        {1: "kidney_left", 2: "kidney_right", 3: "liver", 4: "spleen", 5: "marrow_L2L4", 6: "vertebrae_L2L4", 7: "body"}
    colours = label_colours(vocabulary)
    try:
        label_image, _ = read_image(labels, unit="label")
        dose_image, _ = read_image(dose, unit="Gy")
    except (SpectdoseError, OSError, ValueError) as exc:
        return None, f"unreadable volume ({exc})"
    kidney = np.isin(label_image.array, (1, 2))
    top = float(dose_image.array[kidney].max()) if kidney.any() else float(np.max(dose_image.array))
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        (tmp / f"{pdir.name}.itksnap").write_text(
            itksnap_workspace(out_dir, ct, dose, labels, top), encoding="utf-8")
        (tmp / "itksnap_labels.txt").write_text(
            "# ITK-SNAP label descriptions (spectdose)\n# IDX -R- -G- -B- -A-- VIS MSH LABEL\n"
            + '    0    0    0    0 0 0 0 "Clear Label"\n'
            + "".join(f'{lid:5d} {r:4d} {g:4d} {b:4d} 1 1 1 "{name}"\n' for lid, (name, (r, g, b)) in colours.items()),
            encoding="utf-8")
        (tmp / "labels.ctbl").write_text(
            "# Color table file (3D Slicer), spectdose labels\n# value name R G B A\n0 background 0 0 0 0\n"
            + "".join(f"{lid} {name} {r} {g} {b} 255\n" for lid, (name, (r, g, b)) in colours.items()),
            encoding="utf-8")
        _write_seg_nrrd(tmp / "labels.seg.nrrd", np.asarray(label_image.array), label_image.affine, colours)
    return out_dir, None
