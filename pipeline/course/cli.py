"""``spectdose course``: the summary of a therapy course over its cycles.

```
spectdose course --course-manifest data/P/course.yaml --results-dir results/P --out results/P/course
    [--config config/config.yaml] [--kidney-dose-limit-gy 23] [--kidney-bed-limit-gy 40]
    [--marrow-dose-limit-gy 2] [--planning-basis last|tracer]
```

Reads every cycle's ``RESULTS/<cycle>/`` (kinetics/fits.json, dose/organ_doses.csv, dose/marrow.json,
and uncertainty/uncertainty.json when present) and writes into OUT (atomically):

- ``course.json``: per structure and cycle the absorbed dose (Gy, with SD), dose per activity
  (Gy/GBq), BED (Gy, structures with LQ parameters of their own) and the sums over the course;
  per limit the total, the remaining allowance and the next cycle's activity (GBq, with SD) that
  uses it up; the prediction of each cycle from the earlier cycle's Gy/GBq against its delivered
  dose; the statement on BED summation; ``qc`` and ``qc_summary``.
- ``course.csv``: one row per structure and cycle plus one ``course`` row per structure (units in
  the headers);
- ``course.html``: the same as one self-contained page (:mod:`pipeline.report.course`);
- with ``--cumulative-map``: ``dose_ct_sum.nii.gz`` (Gy, the cycles' dose maps on the course
  reference CT, summed) and ``dvh.csv`` (course DVHs of the reference labels).
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from datetime import datetime
from pathlib import Path

import numpy as np

from ..atomic import atomic_dir, write_json, write_text
from ..cli import run_stage
from ..cli_checks import config_section, require_dir, require_file, require_output_dir
from ..errors import InputError
from ..qc import Check, Gate
from .inputs import lq_from_dose_config, read_course_manifest, read_cycle
from .summary import BED_STATEMENT, Limit, summarise_course

__all__ = ["build_parser", "main", "CSV_COLUMNS"]

PROG = "spectdose course"
#: Columns of course.csv (units in the names).
CSV_COLUMNS = ("structure", "cycle", "kind", "administered_activity_gbq", "absorbed_dose_gy", "absorbed_dose_sd_gy",
               "dose_per_activity_gy_per_gbq", "bed_gy", "bed_sd_gy", "kinetics", "predicted_dose_gy",
               "delivered_over_predicted", "limit_gy", "bed_limit_gy", "remaining_dose_gy", "remaining_bed_gy")
#: Warn when a cycle's delivered dose differs from its prediction by more than this factor.
PREDICTION_WARN_FACTOR = 1.5


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Sum a therapy course's cycles: dose and BED per organ, "
                                "remaining allowance to each limit, next cycle's activity, predicted vs delivered.")
    p.add_argument("--course-manifest", required=True, type=Path, help="course YAML listing the cycles")
    p.add_argument("--results-dir", required=True, type=Path,
                   help="the patient's results folder holding one folder per cycle (results/<patient>)")
    p.add_argument("--out", required=True, type=Path, help="output folder (results/<patient>/course)")
    p.add_argument("--config", type=Path, default=None,
                   help="workflow config: LQ parameters from its dose section (kidneys 2.6 Gy / 2.8 h by default)")
    p.add_argument("--kidney-dose-limit-gy", type=float, default=23.0)
    p.add_argument("--kidney-bed-limit-gy", type=float, default=40.0)
    p.add_argument("--marrow-dose-limit-gy", type=float, default=2.0)
    p.add_argument("--planning-basis", choices=("last", "tracer"), default="last",
                   help="Gy/GBq and kinetics of the latest earlier cycle (default) or of the tracer study")
    p.add_argument("--cumulative-map", action="store_true",
                   help="also sum the cycles' dose maps on the course reference CT (the first cycle's; rigid "
                        "CT-to-CT registration) and write dose_ct_sum.nii.gz and the course DVHs (dvh.csv)")
    p.add_argument("--labels", type=Path, default=None,
                   help="label map on the course reference CT for the course DVHs (default: the first cycle's "
                        "segment/labels.nii.gz)")
    return p



def _qc(gate: Gate, manifest_path, entries, facts, warns, summary):
    nuclides = sorted({f["radionuclide"] for f in facts if f["radionuclide"]})
    gate.add(Check("one_radionuclide", ", ".join(nuclides) or "unknown", "", "one radionuclide in every cycle",
                   "cycles of different radionuclides cannot be summed with one set of kernels and LQ kinetics",
                   "pass" if len(nuclides) == 1 else "fail", "course", str(manifest_path)))
    times = []
    for e in entries:
        try:
            times.append(datetime.fromisoformat(str(e.get("injection_datetime"))))
        except ValueError:
            times.append(None)
    ordered = all(t is not None for t in times) and all(b > a for a, b in zip(times, times[1:]))
    gate.add(Check("cycles_in_time_order", "yes" if ordered else "no", "",
                   "administrations strictly later in list order",
                   "the next-cycle plan and the predictions use the earlier cycles", "pass" if ordered else "fail",
                   "course", str(manifest_path)))
    gate.add(Check("results_consistent_with_manifest", len(warns), "warnings", "0",
                   "administered activities and curve shapes of every cycle found: " + ("; ".join(warns) or "yes"),
                   "pass" if not warns else "warn", "course"))
    for row in summary["limits"]:
        if "total_gy" not in row:
            continue
        status = "warn" if row["remaining_gy"] < 0 else "pass"
        gate.add(Check(f"{row['structure']}_{row['quantity']}_within_limit", float(row["fraction_used"]), "1",
                       "<= 1 (warn above: limit exceeded)", f"course limit {row['limit_gy']:g} Gy", status,
                       row["structure"]))
    for p in summary["prediction"]:
        r = p["delivered_over_predicted"]
        if r is None or p["structure"] not in ("kidneys", "red_marrow"):
            continue
        ok = 1 / PREDICTION_WARN_FACTOR <= r <= PREDICTION_WARN_FACTOR
        gate.add(Check("delivered_over_predicted", float(r), "1",
                       f"{1 / PREDICTION_WARN_FACTOR:.2g}-{PREDICTION_WARN_FACTOR:g} (warn outside)",
                       "a larger change of the dose per activity between cycles than usual: check the kinetics and "
                       "the administered activity", "pass" if ok else "warn", f"{p['cycle']} {p['structure']}"))


def _cycle_ct_path(cdir: Path) -> Path:
    """The CT on the grid of the cycle's dose_ct.nii.gz: its reference time point's ingested CT."""
    from ..atomic import read_json

    ref = cdir / "register" / "reference.json"
    if ref.is_file():
        tp = read_json(ref).get("reference_time_point")
        path = cdir / "ingest" / str(tp) / "ct.nii.gz"
        if path.is_file():
            return path
    path = cdir / "register" / "reference_ct.nii.gz"
    if path.is_file():
        return path
    raise InputError(cdir / "register", "no reference CT of the cycle (reference.json or reference_ct.nii.gz)")


def _cumulative(args, cycles, gate):
    """Course dose map and DVHs: (sum Image, DVH rows, record for course.json)."""
    from ..imageio import read_image
    from ..atomic import read_json
    from .cumulative import align_cycle_dose, cumulative_dose_gy, dose_volume_histograms

    first = args.results_dir / cycles[0].cycle_id
    ref_ct_path = _cycle_ct_path(first)
    ref_ct, _ = read_image(ref_ct_path, unit="HU")
    labels_path = args.labels or first / "segment" / "labels.nii.gz"
    require_file(labels_path, "label map of the course reference CT")
    labels, _ = read_image(labels_path, unit="label")
    if not labels.same_grid(ref_ct):
        raise InputError(labels_path, f"label map is not on the grid of the course reference CT {ref_ct_path}")
    vocab = labels_path.with_name(labels_path.name.replace(".nii.gz", ".json"))
    raw = read_json(vocab).get("labels", {}) if vocab.is_file() else {}
    names = {int(k): v for k, v in raw.items()} or {int(i): f"label_{int(i)}" for i in np.unique(labels.array) if i}
    aligned, records = [], []
    for c in cycles:
        cdir = args.results_dir / c.cycle_id
        dose_path = cdir / "dose" / "dose_ct.nii.gz"
        require_file(dose_path, "cycle dose map on the CT grid")
        dose, _ = read_image(dose_path, unit="Gy")
        ct, _ = read_image(_cycle_ct_path(cdir), unit="HU")
        moved, rec = align_cycle_dose(ref_ct, ct, dose, register=c is not cycles[0])
        aligned.append(np.asarray(moved.array))
        _, _, stats = dose_volume_histograms(moved.array, labels.array, names)
        rec.update({"cycle": c.cycle_id, "dose": str(dose_path), "structure_mean_gy": {
            n: s["mean_gy"] for n, s in stats.items()}})
        for name in ("kidney_left", "kidney_right", "liver"):
            own = c.structures.get(name)
            if own is None or name not in stats or own.dose_gy <= 0:
                continue
            ratio = stats[name]["mean_gy"] / own.dose_gy
            gate.add(Check("aligned_over_own_mean_dose", float(ratio), "1", "0.9-1.1 (warn outside)",
                           "the cycle's dose moved onto the course reference CT, averaged in the course labels, "
                           "against the cycle's own organ mean: misregistration or a different segmentation",
                           "pass" if 0.9 <= ratio <= 1.1 else "warn", f"{c.cycle_id} {name}", str(dose_path)))
        records.append(rec)
    total = cumulative_dose_gy(aligned)
    edges, vf, stats = dose_volume_histograms(total, labels.array, names)
    rows = [{"dose_gy": float(d), **{n: float(v[i]) for n, v in vf.items()}} for i, d in enumerate(edges)]
    img = ref_ct.with_array(total.astype(np.float32), unit="Gy")
    record = {"reference_ct": str(ref_ct_path), "labels": str(labels_path), "cycles": records,
              "structures": stats, "file": "dose_ct_sum.nii.gz", "dvh": "dvh.csv",
              "method": "each cycle's dose_ct.nii.gz pulled onto the first cycle's reference CT after rigid CT-to-CT "
                        "registration (Mattes MI, Euler 3-D), linear interpolation, summed; no deformation between "
                        "cycles"}
    return img, rows, record


def _csv(summary: dict, cycles) -> str:
    pred = {(p["cycle"], p["structure"]): p for p in summary["prediction"]}
    limits = {(r["structure"], r["quantity"]): r for r in summary["limits"] if "total_gy" in r}
    kinds = {c.cycle_id: c.kind for c in cycles}
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_COLUMNS, lineterminator="\n")
    w.writeheader()

    def num(x):
        return "" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.6g}"

    for name, st in summary["structures"].items():
        for c in st["cycles"]:
            p = pred.get((c["cycle"], name), {})
            w.writerow({"structure": name, "cycle": c["cycle"], "kind": kinds[c["cycle"]],
                        "administered_activity_gbq": num(c["administered_gbq"]), "absorbed_dose_gy": num(c["dose_gy"]),
                        "absorbed_dose_sd_gy": num(c["dose_sd_gy"]),
                        "dose_per_activity_gy_per_gbq": num(c["gy_per_gbq"]),
                        "bed_gy": num(c["bed_gy"]), "bed_sd_gy": num(c["bed_sd_gy"]), "kinetics": c["kinetics_method"],
                        "predicted_dose_gy": num(p.get("predicted_dose_gy")),
                        "delivered_over_predicted": num(p.get("delivered_over_predicted"))})
        dl, bl = limits.get((name, "absorbed_dose")), limits.get((name, "bed"))
        w.writerow({"structure": name, "cycle": "course", "kind": "sum",
                    "administered_activity_gbq": num(sum(c["administered_gbq"] for c in st["cycles"])),
                    "absorbed_dose_gy": num(st["total_dose_gy"]), "absorbed_dose_sd_gy": num(st["total_dose_sd_gy"]),
                    "bed_gy": num(st["total_bed_gy"]), "bed_sd_gy": num(st["total_bed_sd_gy"]),
                    "kinetics": "BED summed, complete repair between cycles" if st["total_bed_gy"] is not None else "",
                    "limit_gy": num(dl["limit_gy"]) if dl else "", "bed_limit_gy": num(bl["limit_gy"]) if bl else "",
                    "remaining_dose_gy": num(dl["remaining_gy"]) if dl else "",
                    "remaining_bed_gy": num(bl["remaining_gy"]) if bl else ""})
    return buf.getvalue()


def _run(args) -> int:
    from .. import __version__

    require_file(args.course_manifest, "course manifest")
    require_dir(args.results_dir, "results folder of the course patient")
    require_output_dir(args.out)
    for flag in ("kidney_dose_limit_gy", "kidney_bed_limit_gy", "marrow_dose_limit_gy"):
        if not getattr(args, flag) > 0:
            raise InputError(None, f"--{flag.replace('_', '-')} must be > 0, got {getattr(args, flag)}")
    doc = read_course_manifest(args.course_manifest)
    lq = lq_from_dose_config(config_section(args.config, "dose"))
    cycles, warns, facts = [], [], []
    for entry in doc["cycles"]:
        rec, w, f = read_cycle(args.results_dir, entry, lq)
        cycles.append(rec)
        warns += w
        facts.append(f)
    limits = [Limit("kidneys", "absorbed_dose", args.kidney_dose_limit_gy),
              Limit("kidneys", "bed", args.kidney_bed_limit_gy),
              Limit("red_marrow", "absorbed_dose", args.marrow_dose_limit_gy)]
    summary = summarise_course(cycles, limits, basis=args.planning_basis)
    gate = Gate(args.course_manifest)
    _qc(gate, args.course_manifest, doc["cycles"], facts, warns, summary)
    cumulative = _cumulative(args, cycles, gate) if args.cumulative_map else None
    gate.raise_on_fail()
    for line in gate.warnings:
        print(f"{PROG}: warning: {line}", file=sys.stderr)
    result = {
        "quantity": "course_summary", "software": "spectdose", "software_version": __version__,
        "patient_id": doc.get("patient_id"), "radionuclide": facts[0]["radionuclide"],
        "course_manifest": str(args.course_manifest),
        "cycles": [{"id": c.cycle_id, "kind": c.kind, "compound": c.compound,
                    "administered_activity_mbq": c.administered_mbq,
                    "injection_datetime": c.injection_datetime, "n_scans": c.n_scans,
                    "reduced_protocol": c.reduced_protocol, "uncertainty_source": f["uncertainty"]}
                   for c, f in zip(cycles, facts)],
        "units": {"dose": "Gy", "bed": "Gy", "activity": "GBq", "dose_per_activity": "Gy/GBq"},
        "bed_summation": BED_STATEMENT,
        "uncertainty_note": "SD per cycle from uncertainty/uncertainty.json, else from the kinetic fit alone; SD of "
                            "a sum: the cycles' independent parts in quadrature, the parts they share (calibration, "
                            "S-values, density curve, from the uncertainty budgets) fully correlated; next activity "
                            "by first-order propagation",
        **summary,
        "cumulative_dose_map": cumulative[2] if cumulative else "not computed (--cumulative-map not given)",
        "warnings": warns,
        "qc": gate.to_list(),
        "qc_summary": gate.summary(),
    }
    with atomic_dir(args.out) as tmp:
        write_json(tmp / "course.json", result)
        write_text(tmp / "course.csv", _csv(summary, cycles))
        from ..report.course import course_html

        write_text(tmp / "course.html", course_html(result))
        if cumulative:
            from ..imageio import make_sidecar, write_image

            img, rows, rec = cumulative
            write_image(tmp / "dose_ct_sum.nii.gz", img, make_sidecar(
                "absorbed_dose", "Gy", grid="course reference CT", radionuclide=result["radionuclide"],
                patient_id=doc.get("patient_id"), method=rec["method"],
                sources=[c["dose"] for c in rec["cycles"]]))
            buf = io.StringIO()
            w = csv.DictWriter(buf, list(rows[0]), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
            write_text(tmp / "dvh.csv", buf.getvalue())
    for name in ("kidneys", "red_marrow"):
        st = summary["structures"].get(name)
        if st:
            bed = f", BED {st['total_bed_gy']:.3g} Gy" if st["total_bed_gy"] is not None else ""
            print(f"{name:12s} course: {st['total_dose_gy']:.3g} Gy{bed}")
    nxt = summary["next_cycle"]
    if "activity_gbq" in nxt:
        print(f"next cycle: {nxt['activity_gbq']:.3g} GBq uses up the {nxt['limiting_structure']} "
              f"{nxt['limiting_quantity']} allowance (basis {nxt['basis_cycle']})")
    return 0


def main(argv=None) -> int:
    return run_stage(PROG, build_parser(), _run, argv)
