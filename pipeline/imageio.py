"""Conversions between :class:`pipeline.image.Image` and SimpleITK / NIfTI, and
NIfTI files with JSON sidecars.

This is the only module that flips axes. Conventions:

- :class:`~pipeline.image.Image`: array ``[i, j, k]``, affine to RAS+ mm.
- SimpleITK: array from ``GetArrayFromImage`` is ``[k, j, i]``; origin and
  direction are in LPS mm. LPS = diag(-1, -1, 1) @ RAS.
- NIfTI (nibabel): array ``[i, j, k]`` and a RAS+ affine, as the image model.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np

from .atomic import atomic_path, read_json, write_json
from .errors import InputError
from .image import Image

__all__ = [
    "LPS_FROM_RAS",
    "to_sitk",
    "from_sitk",
    "to_nifti",
    "from_nifti",
    "sidecar_path",
    "make_sidecar",
    "write_image",
    "read_image",
    "read_sidecar",
]

#: Matrix that maps RAS+ coordinates to LPS (and back: it is its own inverse).
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])

#: Sidecar fields every written volume carries (DESIGN.md).
REQUIRED_SIDECAR_FIELDS = ("quantity", "unit", "software", "software_version", "created_utc")


def to_sitk(image: Image):
    """Convert an :class:`Image` to a ``SimpleITK.Image`` (LPS geometry).

    Raises
    ------
    ValueError
        When the affine has shear (non-orthogonal axes), which ITK cannot hold.
    """
    import SimpleITK as sitk

    spacing = image.voxel_size_mm
    direction_ras = image.direction_ras
    if not np.allclose(direction_ras.T @ direction_ras, np.eye(3), atol=1e-6):
        raise ValueError("affine has shear; SimpleITK needs orthonormal direction cosines")
    array = np.ascontiguousarray(np.transpose(image.array, (2, 1, 0)))
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    out = sitk.GetImageFromArray(array)
    out.SetSpacing([float(s) for s in spacing])
    out.SetOrigin([float(v) for v in LPS_FROM_RAS @ image.origin_ras_mm])
    out.SetDirection([float(v) for v in (LPS_FROM_RAS @ direction_ras).ravel()])
    return out


def from_sitk(sitk_image, unit: str, meta: dict | None = None) -> Image:
    """Convert a 3-D ``SimpleITK.Image`` (LPS) to an :class:`Image` (RAS+).

    Parameters
    ----------
    sitk_image : SimpleITK.Image
        A 3-D scalar image.
    unit : str
        Unit of the voxel values.
    """
    import SimpleITK as sitk

    if sitk_image.GetDimension() != 3:
        raise ValueError(f"expected a 3-D image, got {sitk_image.GetDimension()}-D")
    array = np.transpose(sitk.GetArrayFromImage(sitk_image), (2, 1, 0))
    direction_lps = np.asarray(sitk_image.GetDirection(), float).reshape(3, 3)
    spacing = np.asarray(sitk_image.GetSpacing(), float)
    origin_lps = np.asarray(sitk_image.GetOrigin(), float)
    affine = np.eye(4)
    affine[:3, :3] = LPS_FROM_RAS @ direction_lps @ np.diag(spacing)
    affine[:3, 3] = LPS_FROM_RAS @ origin_lps
    return Image(np.ascontiguousarray(array), affine, unit, dict(meta or {}))


def to_nifti(image: Image):
    """Convert an :class:`Image` to a ``nibabel.Nifti1Image`` (sform and qform set)."""
    import nibabel as nib

    array = image.array.astype(np.uint8) if image.array.dtype == np.bool_ else image.array
    nii = nib.Nifti1Image(array, image.affine)
    nii.set_sform(image.affine, code=1)  # scanner-anatomical
    nii.set_qform(image.affine, code=1)
    nii.header.set_xyzt_units(xyz="mm")
    return nii


def from_nifti(nii, unit: str, meta: dict | None = None) -> Image:
    """Convert a ``nibabel`` 3-D NIfTI image to an :class:`Image`."""
    array = np.asanyarray(nii.dataobj)
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    return Image(array, nii.affine, unit, dict(meta or {}))


def sidecar_path(path) -> Path:
    """The JSON sidecar beside a ``.nii.gz`` / ``.nii`` file."""
    path = Path(path)
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return path.with_name(name[: -len(suffix)] + ".json")
    return path.with_suffix(".json")


def make_sidecar(quantity: str, unit: str, **fields) -> dict:
    """Sidecar dictionary with the provenance fields of DESIGN.md.

    Parameters
    ----------
    quantity : str
        What the voxels hold, e.g. ``"activity_concentration"``, ``"absorbed_dose"``.
    unit : str
        Unit of the voxel values, e.g. ``"Bq/mL"``, ``"Gy"``.
    **fields
        Further provenance: ``radionuclide``, ``time_point``, ``time_h``,
        ``method``, ``sources`` (pseudonymous ids or file names), ...
    """
    from . import __version__

    sidecar = {
        "quantity": quantity,
        "unit": unit,
        **fields,
        "software": "spectdose",
        "software_version": __version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return sidecar


def write_image(path, image: Image, sidecar: dict | None = None, *, quantity: str | None = None,
                dtype=None) -> Path:
    """Write ``image`` as NIfTI with a JSON sidecar, each atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Target ``.nii.gz`` (or ``.nii``) file.
    image : Image
        The image; its unit goes into the sidecar.
    sidecar : dict, optional
        Provenance; completed with :func:`make_sidecar` fields where missing.
    quantity : str, optional
        Quantity name when ``sidecar`` is not given.
    dtype : numpy dtype, optional
        On-disk data type (default: the array's own).

    Returns
    -------
    pathlib.Path
        The NIfTI path written.
    """
    import nibabel as nib

    path = Path(path)
    if not (path.name.endswith(".nii.gz") or path.name.endswith(".nii")):
        raise ValueError(f"{path}: NIfTI output must end in .nii.gz or .nii")
    base = make_sidecar(quantity or (sidecar or {}).get("quantity", "unspecified"), image.unit)
    data = {**base, **(sidecar or {})}
    data["unit"] = image.unit
    img = image if dtype is None else image.with_array(image.array.astype(dtype))
    nii = to_nifti(img)
    with atomic_path(path) as tmp:
        nib.save(nii, str(tmp))
    write_json(sidecar_path(path), data)
    return path


def read_sidecar(path) -> dict:
    """Read the JSON sidecar beside a NIfTI file; ``{}`` when there is none."""
    side = sidecar_path(path)
    return read_json(side, "sidecar") if side.exists() else {}


def read_image(path, unit: str | None = None) -> tuple[Image, dict]:
    """Read a NIfTI file and its sidecar.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.nii.gz`` or ``.nii`` file.
    unit : str, optional
        Unit to assume when the sidecar does not state one.

    Returns
    -------
    image : Image
    sidecar : dict
    """
    import nibabel as nib

    path = Path(path)
    if path.is_dir():
        raise InputError(path, "is a folder; expected a NIfTI file (.nii.gz)")
    if not path.exists():
        raise InputError(path, "file not found")
    try:
        nii = nib.load(str(path))
        nii.get_fdata  # touch header
    except Exception as exc:  # nibabel raises many types for bad files
        raise InputError(path, f"not a readable NIfTI file ({type(exc).__name__}: {exc})") from None
    if len(nii.shape) not in (3, 4) or (len(nii.shape) == 4 and nii.shape[3] != 1):
        raise InputError(path, f"expected a 3-D volume, got shape {nii.shape}")
    sidecar = read_sidecar(path)
    unit_read = sidecar.get("unit", unit)
    if unit_read is None:
        raise InputError(path, "no unit: the sidecar has none and none was given")
    try:
        image = from_nifti(nii, unit_read, {"source": path.name})
    except (EOFError, OSError, ValueError) as exc:
        raise InputError(path, f"truncated or corrupt NIfTI data ({exc})") from None
    return image, sidecar
