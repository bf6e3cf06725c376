"""``spectdose kernel``: voxel S-values for any voxel size, and Monte Carlo kernel generation.

Subcommands:

``vsv NUCLIDE --voxel-size-mm X [Y Z] [--medium tissue] [--no-photons] --out FILE.nii.gz``
    Integrate the committed radial point kernel over source and target voxels
    (:mod:`kernels.vsv`, cached by :mod:`kernels.cache`) and write the S-value
    cube (mGy/(MBq*s), source voxel at the centre, world origin at its centre)
    as NIfTI with a JSON sidecar.
``generate NUCLIDE ...``
    Monte Carlo point kernels and voxel S-value cubes with ``ompmc`` (optional
    extra ``spectdose[mc]``); see ``spectdose kernel generate --help``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from pipeline.cli import run_stage

__all__ = ["build_parser", "main", "write_svalue_cube"]

PROG = "spectdose kernel"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    v = sub.add_parser("vsv", help="voxel S-values for any voxel size from the point kernel",
                       description="Voxel S-values (mGy/(MBq*s)) by integrating the committed radial point kernel.")
    v.add_argument("nuclide", help="radionuclide with a committed point kernel, e.g. Lu-177")
    v.add_argument("--voxel-size-mm", nargs="+", type=float, required=True, metavar="MM",
                   help="voxel sides along i, j, k in mm (one value: cubic)")
    v.add_argument("--medium", choices=("tissue", "water"), default="tissue",
                   help="kernel medium: ICRU soft tissue 1.04 g/mL (default) or water 1.00 g/mL")
    v.add_argument("--no-photons", action="store_true", help="electrons only (leave out the photon part)")
    v.add_argument("--extent-mm", type=float, default=None,
                   help="reach of the cube from the source voxel in mm (default 100 with photons, "
                        "the electron range without)")
    v.add_argument("--no-cache", action="store_true", help="neither read nor write the S-value cache")
    v.add_argument("--out", type=Path, required=True, help="output .nii.gz (JSON sidecar written beside it)")
    sub.add_parser("generate", help="Monte Carlo kernels with ompmc (optional extra spectdose[mc])",
                   add_help=False)
    return parser


def write_svalue_cube(path, svalues, *, photons: bool = True) -> Path:
    """Write the (electron + photon) S-value cube of ``svalues`` as NIfTI + sidecar.

    The affine puts the centre of the source voxel at world (0, 0, 0) mm, axes along RAS+.

    Parameters
    ----------
    path : str or os.PathLike
        ``.nii.gz`` target.
    svalues : kernels.kernel_data.VoxelSValues
    photons : bool
        Include the photon part in the written cube.
    """
    from pipeline.image import Image, affine_from_geometry
    from pipeline.imageio import make_sidecar, write_image

    electrons = np.asarray(svalues.electron_mgy_per_mbq_s, dtype=float)
    cube = np.asarray(svalues.total_mgy_per_mbq_s, dtype=float) if photons else electrons
    a = np.asarray(svalues.voxel_size_mm, dtype=float)
    half = np.array(cube.shape) // 2
    affine = affine_from_geometry(-half * a, np.eye(3), a)
    c = tuple(int(x) for x in half)
    prov = dict(svalues.provenance)
    kernel_prov = prov.pop("point_kernel_provenance", {})
    sidecar = make_sidecar(
        "voxel_s_values", "mGy/(MBq*s)",
        radionuclide=svalues.nuclide,
        medium=svalues.medium,
        density_g_per_ml=float(svalues.density_g_per_ml),
        voxel_size_mm=[float(x) for x in a],
        components="electrons+photons" if photons and prov.get("photons", True) else "electrons",
        source_voxel_index=list(c),
        s000_mgy_per_mbq_s=float(cube[c]),
        s000_electron_rel_unc=float(np.asarray(svalues.electron_rel_unc)[c]),
        method=prov.get("method", "point-kernel integration"),
        integration=prov,
        point_kernel={k: kernel_prov[k] for k in ("nuclide", "medium", "density_g_per_ml", "physics", "seed",
                                                  "decay_data_version", "electron_emissions",
                                                  "photon_emissions", "generator", "date") if k in kernel_prov},
    )
    return write_image(path, Image(cube, affine, "mGy/(MBq*s)"), sidecar)


def _run_vsv(args) -> int:
    from pipeline.errors import InputError

    from .cache import get_voxel_svalues

    out = Path(args.out)
    if not out.name.endswith((".nii.gz", ".nii")):
        raise InputError(out, "output must end in .nii.gz or .nii")
    size = args.voxel_size_mm
    if len(size) not in (1, 3):
        raise InputError(None, f"--voxel-size-mm takes one or three values, got {len(size)}")
    if any(not (s > 0 and np.isfinite(s)) for s in size):
        raise InputError(None, f"--voxel-size-mm must be positive, got {size}")
    if args.extent_mm is not None and not args.extent_mm > 0:
        raise InputError(None, f"--extent-mm must be positive, got {args.extent_mm}")
    sv = get_voxel_svalues(args.nuclide, size, args.medium, photons=not args.no_photons,
                           extent_mm=args.extent_mm, use_cache=not args.no_cache)
    path = write_svalue_cube(out, sv, photons=not args.no_photons)
    cube_shape = np.asarray(sv.electron_mgy_per_mbq_s).shape
    c = tuple(n // 2 for n in cube_shape)
    s000 = float(np.asarray(sv.total_mgy_per_mbq_s if not args.no_photons else sv.electron_mgy_per_mbq_s)[c])
    print(f"{path}: {sv.nuclide} in {sv.medium}, voxel {' x '.join(f'{x:g}' for x in sv.voxel_size_mm)} mm, "
          f"cube {'x'.join(str(n) for n in cube_shape)}, S000 {s000:.4g} mGy/(MBq*s)")
    return 0


def _run_generate(argv) -> int:
    try:
        from kernels.mc.cli import main as mc_main
    except ImportError as exc:
        print(f"{PROG} generate: error: Monte Carlo generation is not available ({exc}); "
              "install the optional extra: pip install 'spectdose[mc]'", file=sys.stderr)
        return 2
    return int(mc_main(argv) or 0)


def main(argv=None) -> int:
    """Run ``spectdose kernel`` with ``argv``; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "generate":
        return _run_generate(argv[1:])
    return run_stage(PROG, build_parser(), _run_vsv, argv)
