"""``spectdose phantom``: generate the digital SPECT/CT sample patient with its ground truth."""

from __future__ import annotations

import argparse

from pipeline.cli import run_stage


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spectdose phantom",
        description="Generate the digital SPECT/CT sample patient (scans, manifest, ground truth, montage).")
    parser.add_argument("--preset", choices=("small", "standard"), default="small")
    parser.add_argument("--nuclide", default="Lu-177", help="Lu-177 (default), Cu-67 or Y-90")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output folder (replaced atomically)")
    parser.add_argument("--noise-free", action="store_true", help="no CT noise, no SPECT Poisson noise")
    parser.add_argument("--deformed", action="store_true", help="add a smooth deformation to each session")
    parser.add_argument("--format", choices=("dicom", "nifti"), default="dicom")
    parser.add_argument("--time-points-h", type=float, nargs="+", default=[1.0, 4.0, 24.0, 48.0, 168.0],
                        metavar="H", help="SPECT times in h after injection")
    parser.add_argument("--injected-mbq", type=float, default=7400.0)
    parser.add_argument("--patient-id", default="SAMPLE01", help="pseudonymous patient id")
    parser.add_argument("--injection-datetime", default="2026-01-05T09:00:00", help="ISO 8601 local time")
    parser.add_argument("--psf-fwhm-mm", type=float, default=None, help="SPECT resolution (default per nuclide)")
    parser.add_argument("--course", action="store_true",
                        help="a therapy course instead (sample_data/course.py): tracer study 200 MBq (5 scans), "
                             "therapy 7.4 GBq (5 scans), therapy 6.0 GBq (one scan at 72 h), with course.yaml and "
                             "truth/course_truth.json; --time-points-h, --injected-mbq and --injection-datetime "
                             "do not apply")
    return parser


def _run(args) -> int:
    from pipeline.cli_checks import check_patient_id

    from .generator import generate

    check_patient_id(args.patient_id)

    if args.course:
        from .course import generate_course

        out = generate_course(args.out, preset=args.preset, nuclide=args.nuclide, seed=args.seed,
                              noise=not args.noise_free, fmt=args.format, patient_id=args.patient_id)
        print(f"sample course written to {out} (course.yaml, one folder per cycle, truth/course_truth.json)")
        return 0
    out = generate(args.out, preset=args.preset, nuclide=args.nuclide, seed=args.seed, noise=not args.noise_free,
                   deformed=args.deformed, fmt=args.format, time_points_h=args.time_points_h,
                   injected_mbq=args.injected_mbq, patient_id=args.patient_id,
                   injection_datetime=args.injection_datetime, psf_fwhm_mm=args.psf_fwhm_mm)
    print(f"sample patient written to {out} (manifest.yaml, truth/, montage.png)")
    return 0


def main(argv=None) -> int:
    return run_stage("spectdose phantom", build_parser(), _run, argv)
