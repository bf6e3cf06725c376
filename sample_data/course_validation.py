"""Validation of the therapy-course features on a generated course, against its truth.

``python -m sample_data.course_validation --out DIR [--preset small] [--noise-free]``

1. Generates the default course (:data:`sample_data.course.DEFAULT_COURSE`: tracer study 200 MBq
   with five scans, therapy 1 at 7.4 GBq with five scans and faster, lower kidney kinetics,
   therapy 2 at 6.0 GBq with one scan at 72 h).
2. Runs ingest, register, kinetics (``--reduced prior_cycle`` with cycle 1's fits for the one-scan
   cycle) and dose per cycle on the truth labels (segmentation errors are not part of this
   check), then ``spectdose course``.
3. Truth per cycle: the generator's TIA as imaged (``truth/spect_psf_tia.nii.gz``) through the
   same dose stage, kernels, CT and labels; truth BED from the generator's kidney kinetics
   (uptake-washout, analytic LQ protraction factor); truth course sums. The as-imaged truth
   organ TIA (the same label occupancy on the SPECT grid) for the single-scan cycle, with the
   error of Hanscheid's formula (no earlier cycle) beside it.
4. The seed study's planning rule: the tracer study's Gy/GBq gives the activity that brings the
   kidneys to 23 Gy or the red marrow to 1 Gy, whichever is lower; a therapy cycle with the
   tracer's kinetics is generated at that activity and run the same way; its delivered dose is
   compared with the limit.

Writes ``DIR/validation.json`` and prints the tables. Cost on the small preset: about 4 minutes
on 2 shared cores.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

__all__ = ["run_validation", "main"]

PATIENT = "COURSE01"
KIDNEY_LIMIT_GY = 23.0
MARROW_LIMIT_GY = 1.0


def _organ_doses(path: Path) -> dict:
    with open(path, newline="", encoding="utf-8") as handle:
        return {r["name"]: {"mean_gy": float(r["mean_gy"]), "mass_g": float(r["mass_g"])}
                for r in csv.DictReader(handle)}


def _kidneys(doses: dict) -> float:
    m = doses["kidney_left"]["mass_g"] + doses["kidney_right"]["mass_g"]
    return (doses["kidney_left"]["mean_gy"] * doses["kidney_left"]["mass_g"]
            + doses["kidney_right"]["mean_gy"] * doses["kidney_right"]["mass_g"]) / m


def run_chain(cycle_dir: Path, out: Path, labels: Path, kinetics_extra=()):
    """ingest, register, kinetics (with ``kinetics_extra`` options), dose of one cycle into ``out``."""
    from pipeline.dose.cli import main as dose_main
    from pipeline.ingest.cli import main as ingest_main
    from pipeline.kinetics.cli import main as kinetics_main
    from pipeline.register.cli import main as register_main

    steps = [
        (ingest_main, [str(cycle_dir / "manifest.yaml"), "--patient-id", PATIENT, "--out", str(out / "ingest")]),
        (register_main, ["--ingest-dir", str(out / "ingest"), "--out", str(out / "register")]),
        (kinetics_main, ["--register-dir", str(out / "register"), "--labels", str(labels),
                         "--out", str(out / "kinetics"), *kinetics_extra]),
        (dose_main, ["--kinetics-dir", str(out / "kinetics"), "--labels", str(labels),
                     "--ct", str(out / "register" / "reference_ct.nii.gz"), "--out", str(out / "dose")]),
    ]
    for func, argv in steps:
        if func(argv) != 0:
            raise RuntimeError(f"{func.__module__} failed on {cycle_dir}")


def truth_dose(cycle_dir: Path, chain_out: Path, labels: Path, out: Path) -> dict:
    """Organ doses of the cycle's TIA as imaged through the same dose stage (CT, labels, kernels)."""
    import shutil

    from pipeline.dose.cli import main as dose_main

    kin = out / "kinetics"
    kin.mkdir(parents=True, exist_ok=True)
    for name in ("spect_psf_tia.nii.gz", "spect_psf_tia.json"):
        shutil.copy(cycle_dir / "truth" / name, kin / name.replace("spect_psf_tia", "tia"))
    if dose_main(["--kinetics-dir", str(kin), "--labels", str(labels), "--ct",
                  str(chain_out / "register" / "reference_ct.nii.gz"), "--out", str(out / "dose")]) != 0:
        raise RuntimeError(f"truth dose failed on {cycle_dir}")
    return _organ_doses(out / "dose" / "organ_doses.csv")


def truth_organ_tia_as_imaged(cycle_dir: Path, labels: Path) -> dict:
    """Organ TIA (MBq h) of the as-imaged truth map with the kinetics stage's label occupancy."""
    from pipeline.imageio import read_image
    from pipeline.kinetics.tac import label_occupancy, organ_activity_mbq

    tia, _ = read_image(cycle_dir / "truth" / "spect_psf_tia.nii.gz")
    lab, _ = read_image(labels, unit="label")
    occ = label_occupancy(lab, tia)
    as_bq = tia.with_array(tia.array * 1e6, unit="Bq/mL")  # MBq h/mL -> "Bq/mL" x 1e6: sums in MBq h
    with open(labels.with_name("labels.json"), encoding="utf-8") as handle:
        names = json.load(handle)["labels"]
    return {names[str(k)]: v for k, v in organ_activity_mbq(as_bq, occ).items() if str(k) in names}


def _kidney_truth_g(spec, nuclide: str, repair_half_time_h: float = 2.8) -> float:
    from kernels.decay import load_decay
    from pipeline.dose.radiobiology import lq_g_factor_per_gy

    from .course import cycle_compartments

    lp = load_decay(nuclide).decay_constant_per_h
    mu = math.log(2.0) / repair_half_time_h
    gs = []
    for name in ("kidney_left", "kidney_right"):
        p = cycle_compartments(spec, nuclide)[name].parameters
        rates = [p["lambda_washout_per_h"] + lp, p["lambda_uptake_per_h"] + lp]
        gs.append(lq_g_factor_per_gy([p["a"], -p["a"]], rates, mu))
    return sum(gs) / len(gs)


def _pct(a, b):
    return 100.0 * (a / b - 1.0)


def run_validation(out_dir, preset: str = "small", noise: bool = True, seed: int = 0) -> dict:
    """Run the whole validation into ``out_dir``; return (and write) the measured numbers."""
    from pipeline.course.cli import main as course_main

    from .course import DEFAULT_COURSE, generate_course, with_activity

    out = Path(out_dir)
    data = out / "data" / PATIENT
    res = out / "results" / PATIENT
    generate_course(data, DEFAULT_COURSE, preset=preset, noise=noise, seed=seed, patient_id=PATIENT)
    nuclide = "Lu-177"
    ab = 2.6
    results = {"preset": preset, "noise": noise, "seed": seed, "cycles": {}}
    full = []
    for spec in DEFAULT_COURSE:
        cdir = data / spec.cycle_id
        labels = cdir / "truth" / "labels.nii.gz"
        extra = []
        if len(spec.time_points_h) <= 2:
            extra = ["--reduced", "prior_cycle", "--prior-fits", str(res / full[-1] / "kinetics" / "fits.json")]
        else:
            full.append(spec.cycle_id)
        run_chain(cdir, res / spec.cycle_id, labels, extra)
        truth = truth_dose(cdir, res / spec.cycle_id, labels, out / "truth_dose" / spec.cycle_id)
        got = _organ_doses(res / spec.cycle_id / "dose" / "organ_doses.csv")
        d_true = _kidneys(truth)
        g_true = _kidney_truth_g(spec, nuclide)
        results["cycles"][spec.cycle_id] = {
            "administered_mbq": spec.injected_mbq, "n_scans": len(spec.time_points_h),
            "kidneys_truth_gy": d_true, "kidneys_truth_bed_gy": d_true + g_true * d_true ** 2 / ab,
            "kidneys_pipeline_gy": _kidneys(got),
            "organs_pct_vs_truth": {k: _pct(got[k]["mean_gy"], truth[k]["mean_gy"]) for k in
                                    ("kidney_left", "kidney_right", "liver", "spleen")},
            "truth_gy_per_gbq_kidneys": d_true / (spec.injected_mbq / 1000.0),
            "truth_organs_gy": {k: truth[k]["mean_gy"] for k in ("kidney_left", "kidney_right", "liver", "spleen")}}
    # course summary (no limits changed: defaults)
    first_labels = data / DEFAULT_COURSE[0].cycle_id / "truth" / "labels.nii.gz"
    assert course_main(["--course-manifest", str(data / "course.yaml"), "--results-dir", str(res),
                        "--out", str(res / "course"), "--cumulative-map", "--labels", str(first_labels)]) == 0
    course = json.loads((res / "course" / "course.json").read_text())
    kid = course["structures"]["kidneys"]
    t_dose = sum(c["kidneys_truth_gy"] for c in results["cycles"].values())
    t_bed = sum(c["kidneys_truth_bed_gy"] for c in results["cycles"].values())
    truth_sides = {k: sum(c["truth_organs_gy"][k] for c in results["cycles"].values())
                   for k in ("kidney_left", "kidney_right")}
    cmap = course["cumulative_dose_map"]["structures"]
    results["course"] = {"kidneys_dose_gy": kid["total_dose_gy"], "kidneys_dose_truth_gy": t_dose,
                         "kidneys_dose_pct": _pct(kid["total_dose_gy"], t_dose),
                         "kidneys_bed_gy": kid["total_bed_gy"], "kidneys_bed_truth_gy": t_bed,
                         "kidneys_bed_pct": _pct(kid["total_bed_gy"], t_bed),
                         "cumulative_map_mean_pct": {k: _pct(cmap[k]["mean_gy"], truth_sides[k]) for k in truth_sides},
                         "qc_summary": course["qc_summary"]}
    # prediction against delivery: delivered/predicted vs the truth change of Gy/GBq
    rows = []
    ids = [s.cycle_id for s in DEFAULT_COURSE]
    for p in course["prediction"]:
        if p["structure"] != "kidneys":
            continue
        i = ids.index(p["cycle"])
        truth_ratio = (results["cycles"][p["cycle"]]["truth_gy_per_gbq_kidneys"]
                       / results["cycles"][ids[i - 1]]["truth_gy_per_gbq_kidneys"])
        rows.append({"cycle": p["cycle"], "basis": p["basis_cycle"], "predicted_gy": p["predicted_dose_gy"],
                     "delivered_gy": p["delivered_dose_gy"], "delivered_over_predicted": p["delivered_over_predicted"],
                     "truth_ratio": truth_ratio, "pct": _pct(p["delivered_over_predicted"], truth_ratio)})
    results["prediction_kidneys"] = rows
    # single scan: prior_cycle (cycle 1) against Hanscheid without it, organ TIA vs the as-imaged truth
    reduced = [s for s in DEFAULT_COURSE if len(s.time_points_h) == 1][0]
    cdir = data / reduced.cycle_id
    labels = cdir / "truth" / "labels.nii.gz"
    from pipeline.kinetics.cli import main as kinetics_main

    hdir = out / "haenscheid" / reduced.cycle_id / "kinetics"
    assert kinetics_main(["--register-dir", str(res / reduced.cycle_id / "register"), "--labels", str(labels),
                          "--out", str(hdir), "--reduced", "haenscheid"]) == 0
    truth_tia = truth_organ_tia_as_imaged(cdir, labels)
    prior_fit = json.loads((res / reduced.cycle_id / "kinetics" / "fits.json").read_text())["organs"]
    h_fit = json.loads((hdir / "fits.json").read_text())["organs"]
    results["single_time_point"] = {
        "cycle": reduced.cycle_id, "time_h": reduced.time_points_h[0],
        "organs": {k: {"truth_as_imaged_mbq_h": truth_tia[k],
                       "prior_cycle_pct": _pct(prior_fit[k]["tia_mbq_h"], truth_tia[k]),
                       "haenscheid_pct": _pct(h_fit[k]["tia_mbq_h"], truth_tia[k])}
                   for k in ("kidney_left", "kidney_right", "liver", "spleen", "marrow_L2L4")}}
    # the seed study's rule on the tracer study, checked by a therapy cycle with the tracer's kinetics
    tracer = DEFAULT_COURSE[0]
    tr = _organ_doses(res / tracer.cycle_id / "dose" / "organ_doses.csv")
    marrow = json.loads((res / tracer.cycle_id / "dose" / "marrow.json").read_text())
    gbq = tracer.injected_mbq / 1000.0
    d_k, d_m = _kidneys(tr) / gbq, marrow["absorbed_dose_gy"] / gbq
    a_k, a_m = KIDNEY_LIMIT_GY / d_k, MARROW_LIMIT_GY / d_m
    planned = min(a_k, a_m)
    verify = with_activity(tracer, planned * 1000.0, "verify")
    vdata = out / "verify_data"
    generate_course(vdata, (verify,), preset=preset, noise=noise, seed=seed, patient_id=PATIENT)
    vres = out / "verify_results" / "verify"
    run_chain(vdata / "verify", vres, vdata / "verify" / "truth" / "labels.nii.gz")
    vd = _organ_doses(vres / "dose" / "organ_doses.csv")
    vm = json.loads((vres / "dose" / "marrow.json").read_text())["absorbed_dose_gy"]
    lim_name = "kidneys" if a_k <= a_m else "red_marrow"
    delivered = _kidneys(vd) if lim_name == "kidneys" else vm
    results["planning"] = {"tracer_kidneys_gy_per_gbq": d_k, "tracer_marrow_gy_per_gbq": d_m,
                           "activity_for_kidneys_23gy_gbq": a_k, "activity_for_marrow_1gy_gbq": a_m,
                           "planned_gbq": planned, "limiting": lim_name,
                           "delivered_kidneys_gy": _kidneys(vd), "delivered_marrow_gy": vm,
                           "delivered_limiting_gy": delivered,
                           "limit_gy": KIDNEY_LIMIT_GY if lim_name == "kidneys" else MARROW_LIMIT_GY,
                           "pct_vs_limit": _pct(delivered,
                                                KIDNEY_LIMIT_GY if lim_name == "kidneys" else MARROW_LIMIT_GY),
                           # the other organ at its own limit, from the verify run's dose per activity (linear in
                           # activity at the same kinetics; not a separate run)
                           "kidneys_at_23gy_plan_delivered_gy_by_linearity": _kidneys(vd) / planned * a_k,
                           "marrow_at_1gy_plan_delivered_gy_by_linearity": vm / planned * a_m}
    (out / "validation.json").write_text(json.dumps(results, indent=2))
    return results


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sample_data.course_validation",
                                description="Validate the therapy-course features on a generated course.")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--preset", choices=("small", "standard"), default="small")
    p.add_argument("--noise-free", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    r = run_validation(args.out, args.preset, not args.noise_free, args.seed)
    print(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
