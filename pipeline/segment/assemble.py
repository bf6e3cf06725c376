"""Turn named structure masks into the DESIGN.md label map.

Rules (one label per voxel): body (7) under everything; vertebral bodies of
L2-L4 (6); the marrow VOI (5) inside them; liver (3), spleen (4), kidneys
(1, 2); lesions (100+) last. So the whole vertebral bodies are labels 5 + 6
and the organs exclude lesions. Full vertebrae (with the posterior arch, as
TotalSegmentator gives them) are reduced to their bodies by an opening in each
axial slice (the arch is thinner than the body). A missing marrow VOI is
derived from the bodies (:mod:`pipeline.segment.marrow`); a missing body
outline from the CT (HU > -400, largest components, holes filled).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError
from ..image import Image
from . import labels as L
from .marrow import marrow_voi
from .components import component_sizes, select_labels

__all__ = ["vertebral_body_from_vertebra", "body_from_ct", "assemble_labels", "check_organs"]


def vertebral_body_from_vertebra(mask: np.ndarray, voxel_size_mm, radius_mm: float = 8.0) -> np.ndarray:
    """Vertebral body of a whole-vertebra mask: per axial slice, the opening by a disk of radius_mm
    that keeps the thickest blob (the body); pedicles, laminae and processes are thinner."""
    vs = np.asarray(voxel_size_mm, float)
    out = np.zeros_like(mask, dtype=bool)
    r = radius_mm / vs[0]
    n = max(1, int(np.floor(r)))
    yy, xx = np.mgrid[-n:n + 1, -n:n + 1]
    disk = (xx ** 2 + (yy * vs[1] / vs[0]) ** 2) <= r * r
    for k in np.flatnonzero(mask.any(axis=(0, 1))):
        filled = ndi.binary_fill_holes(mask[:, :, k])
        e = ndi.binary_erosion(filled, disk)
        if not e.any():
            continue
        lab, nlab = ndi.label(e)
        sizes = component_sizes(lab, nlab)
        core = lab == (int(np.argmax(sizes)) + 1)
        out[:, :, k] = ndi.binary_dilation(core, disk) & filled
    return out


def body_from_ct(ct: Image) -> np.ndarray:
    """Patient outline from the CT: HU > -400, components > 100 mL, holes filled per slice (axis 2)."""
    a = np.asarray(ct.array)
    m = a > -400
    m = ndi.binary_opening(m, structure=np.ones((3, 3, 1), bool), iterations=1)
    lab, n = ndi.label(m)
    if n == 0:
        return m
    sizes = component_sizes(lab, n) * ct.voxel_volume_ml
    body = select_labels(lab, np.flatnonzero(sizes > 100.0) + 1)
    for k in range(body.shape[2]):
        body[:, :, k] = ndi.binary_fill_holes(body[:, :, k])
    return body


def check_organs(structures: dict, source, required=L.ORGAN_NAMES):
    """Raise InputError naming each required organ that is missing or empty."""
    empty = [n for n in required if n not in structures or not np.any(structures[n])]
    if empty:
        raise InputError(source, f"empty or missing organ(s): {', '.join(empty)}")


def assemble_labels(ct: Image, structures: dict, source, notes: list, marrow_method: str = "eroded",
                    marrow_margin_mm: float = 4.0, marrow_sphere_radius_mm: float = 8.0,
                    full_vertebrae: bool = False, absent_organs=()) -> Image:
    """Label map (uint16, DESIGN ids) on the CT grid from named boolean masks on that grid.

    Parameters
    ----------
    ct : Image
        CT (HU), target grid.
    structures : dict name -> numpy.ndarray bool
        Names of :mod:`pipeline.segment.labels` plus ``vertebrae_L2`` ... ``vertebrae_L4``.
    source : str or os.PathLike
        For messages.
    notes : list
        Notes are appended.
    full_vertebrae : bool
        The vertebra masks include the posterior arch (TotalSegmentator):
        reduce them to bodies.
    """
    check_organs(structures, source, [n for n in L.ORGAN_NAMES if n not in absent_organs])
    vs = ct.voxel_size_mm
    if not np.allclose(np.abs(ct.direction_ras), np.eye(3), atol=1e-3):
        notes.append("CT grid is not axis-aligned: vertebral bodies and marrow are derived slice by slice "
                     "on its own axes")
    bodies = {}
    for n in ("L2", "L3", "L4"):
        key = f"vertebrae_{n}"
        if key in structures and np.any(structures[key]):
            m = structures[key]
            bodies[n] = vertebral_body_from_vertebra(m, vs) if full_vertebrae else m
    if not bodies and "vertebrae_L2L4" in structures and np.any(structures["vertebrae_L2L4"]):
        m = structures["vertebrae_L2L4"]
        bodies["L2L4"] = vertebral_body_from_vertebra(m, vs) if full_vertebrae else m
    if "marrow_L2L4" in structures and np.any(structures["marrow_L2L4"]):
        marrow = structures["marrow_L2L4"]
        notes.append("marrow VOI: taken from the masks as given")
    elif bodies:
        vois = marrow_voi(bodies, vs, marrow_method, marrow_margin_mm, marrow_sphere_radius_mm,
                          _lesion_union(structures, ct.shape))
        marrow = np.zeros(ct.shape, bool)
        for n, v in vois.items():
            if not v.any():
                raise InputError(source, f"marrow VOI of vertebra {n} is empty (body too small for a "
                                         f"{marrow_margin_mm} mm margin)")
            marrow |= v
        notes.append(f"marrow VOI: {marrow_method} method, {marrow_margin_mm} mm from cortex/endplates"
                     + (f", spheres of {marrow_sphere_radius_mm} mm" if marrow_method == "spheres" else ""))
    else:
        raise InputError(source, "empty or missing structure(s): vertebrae L2-L4 (needed for the marrow VOI)")
    if "body" in structures and np.any(structures["body"]):
        body = structures["body"]
    else:
        body = body_from_ct(ct)
        notes.append("body outline: from the CT (HU > -400), not from the masks")
    lab = np.zeros(ct.shape, np.uint16)
    lab[body] = L.BODY
    for m in bodies.values():
        lab[m] = L.VERTEBRAE_L2L4
    if "vertebrae_L2L4" in structures and not bodies:
        lab[structures["vertebrae_L2L4"]] = L.VERTEBRAE_L2L4
    lab[marrow] = L.MARROW_L2L4
    lab[structures["liver"]] = L.LIVER
    lab[structures["spleen"]] = L.SPLEEN
    lab[structures["kidney_left"]] = L.KIDNEY_LEFT
    lab[structures["kidney_right"]] = L.KIDNEY_RIGHT
    for name in sorted(n for n in structures if n.startswith("lesion_")):
        lab[structures[name]] = L.name_to_id(name)
    return ct.with_array(lab, unit="label")


def _lesion_union(structures, shape):
    m = np.zeros(shape, bool)
    for name, v in structures.items():
        if name.startswith("lesion_"):
            m |= v
    return m
