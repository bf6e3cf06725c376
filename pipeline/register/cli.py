"""``spectdose register``: align every time point to the reference, SPECT onto the dose grid.

Transform convention: fixed = the reference time point, moving = the other
time point; each ``<tp>/transform.tfm`` maps reference-space LPS mm to the
time point's LPS mm (ITK convention, readable with ``SimpleITK.ReadTransform``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from ..cli import run_stage
from ..cli_checks import require_dir, require_output_dir
from ..errors import InputError

__all__ = ["build_parser", "main", "parse_region"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="spectdose register",
        description="Register every time point's CT to the reference CT (rigid, optionally deformable) "
                    "and move its SPECT onto the dose grid (the reference SPECT grid) conserving activity.")
    p.add_argument("--ingest-dir", required=True, type=Path, help="results/<patient>/ingest")
    p.add_argument("--out", required=True, type=Path, help="results/<patient>/register")
    p.add_argument("--reference", metavar="TP",
                   help="reference time point (default: the ingest manifest's, else the scan closest "
                        "to 24 h with a usable CT)")
    p.add_argument("--time-point", metavar="TP", help="register only this time point")
    p.add_argument("--deformable", action="store_true",
                   help="add a regularised B-spline stage after the rigid one")
    p.add_argument("--allow-fallback", action="store_true",
                   help="on a failed check keep going: identity for a failed rigid stage, the rigid "
                        "result for a failed deformable stage (recorded in qc.json)")
    p.add_argument("--region", metavar="SPEC",
                   help="restrict the metric: 'z:LOW:HIGH' (superior coordinate range of the reference, "
                        "RAS mm) or a NIfTI mask on the reference CT ('PATH' or 'PATH:1,2,3' for label ids)")
    p.add_argument("--bone-weighting", action="store_true",
                   help="evaluate the rigid metric on bone and its surroundings only")
    p.add_argument("--init", choices=("moments", "geometry", "identity"), default="moments",
                   help="initial alignment (default: body centroids)")
    p.add_argument("--max-translation-mm", type=float, default=50.0,
                   help="plausibility limit of the body-centre translation (default 50)")
    p.add_argument("--max-rotation-deg", type=float, default=15.0,
                   help="plausibility limit of the rotation (default 15)")
    p.add_argument("--min-correlation", type=float, default=0.75,
                   help="smallest accepted HU correlation of reference and moved CT (default 0.75)")
    p.add_argument("--working-spacing-mm", type=float, default=3.0,
                   help="isotropic voxel size the CTs are registered at (default 3)")
    p.add_argument("--control-point-spacing-mm", type=float, default=60.0,
                   help="B-spline control-point spacing, the regularisation (default 60)")
    return p


def parse_region(spec: str, reference_ct=None):
    """A boolean region mask in reference space from a ``--region`` value.

    Parameters
    ----------
    spec : str
        ``z:LOW:HIGH`` (RAS superior mm) or ``PATH`` / ``PATH:ID,ID`` (NIfTI mask or labels).
    reference_ct : Image
        Needed for ``z:`` slabs (the grid of the mask).

    Returns
    -------
    Image
        Boolean mask with ``meta["description"]``.
    """
    from ..imageio import read_image
    from .masks import slab_mask

    if spec.startswith("z:"):
        try:
            lo, hi = (float(v) for v in spec[2:].split(":"))
        except ValueError:
            raise InputError(None, f"--region {spec!r}: expected z:LOW:HIGH in mm") from None
        mask = slab_mask(reference_ct, lo, hi)
        return mask.with_array(mask.array, description=f"superior coordinate {min(lo, hi):g}..{max(lo, hi):g} mm")
    path, ids = spec, None
    head, sep, tail = spec.rpartition(":")
    if sep and tail and all(part.strip().isdigit() for part in tail.split(",")):
        path, ids = head, [int(v) for v in tail.split(",")]
    image, _ = read_image(path, unit="label")
    arr = np.asarray(image.array)
    mask = np.isin(arr, ids) if ids else arr != 0
    if not mask.any():
        raise InputError(path, f"region mask is empty{' for labels ' + str(ids) if ids else ''}")
    desc = f"{Path(path).name}" + (f" labels {ids}" if ids else " (non-zero voxels)")
    return image.with_array(mask, unit="mask", description=desc)


def _run(args) -> int:
    from .deformable import DeformableSettings
    from .qc import QCLimits
    from .rigid import RigidSettings
    from .stage import RegisterOptions, find_time_points, run_register

    require_dir(args.ingest_dir, "ingest folder")
    require_output_dir(args.out)
    region = None
    if args.region:
        reference_ct = None
        if args.region.startswith("z:"):
            from ..imageio import read_image
            from .stage import _resolve_reference

            tps = find_time_points(args.ingest_dir)
            ref_id, _, _ = _resolve_reference(Path(args.ingest_dir), tps, args.reference)
            reference_ct, _ = read_image(tps[ref_id].ct_path, unit="HU")
        region = parse_region(args.region, reference_ct)
    if args.working_spacing_mm <= 0 or args.control_point_spacing_mm <= 0:
        raise InputError(None, "--working-spacing-mm and --control-point-spacing-mm must be positive")
    options = RegisterOptions(
        rigid=dataclasses.replace(RigidSettings(), init=args.init, working_spacing_mm=args.working_spacing_mm),
        deformable=(DeformableSettings(control_point_spacing_mm=args.control_point_spacing_mm)
                    if args.deformable else None),
        limits=dataclasses.replace(QCLimits(), max_translation_mm=args.max_translation_mm,
                                   max_rotation_deg=args.max_rotation_deg, min_correlation=args.min_correlation),
        allow_fallback=args.allow_fallback,
        region=region,
        bone_weighting=args.bone_weighting,
    )
    run_register(args.ingest_dir, args.out, reference=args.reference, time_point=args.time_point,
                 options=options, log=lambda line: print(line, file=sys.stdout, flush=True))
    return 0


def main(argv=None) -> int:
    return run_stage("spectdose register", build_parser(), _run, argv)
