"""``spectdose segment``: label map, vocabulary, organ table and QC figure on the reference CT.

Outputs in ``--out`` (written together: a temporary folder renamed at the end):
``labels.nii.gz`` (+ sidecar), ``labels.json``, ``organs.csv``, ``qc.json`` (the QC gate:
every check with its value, range, source and pass/warn/fail), ``qc.png``.

The QC gate (:mod:`pipeline.segment.gate`) runs on the label map of every
backend. By default a failing check stops the stage (one line naming the
structure, the check, the value and the expected range; exit 2; nothing
written); ``--qc warn`` lets a physicist who has looked at the masks go on,
the failing checks then reach ``qc.json`` and the report as warnings.
"""

from __future__ import annotations

import argparse
import csv
import io
import tempfile
from pathlib import Path

import numpy as np

from ..atomic import atomic_dir, write_json, write_text
from ..errors import InputError
from ..image import Image
from ..imageio import make_sidecar, read_image, write_image
from ..cli import run_stage
from . import labels as L
from .density import structure_stats

BACKENDS = ("builtin", "nifti", "dicom-seg", "rtstruct", "totalsegmentator-output", "totalsegmentator")

__all__ = ["build_parser", "main", "segment", "write_outputs", "BACKENDS"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spectdose segment", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ct", required=True, help="reference CT (NIfTI, HU)")
    p.add_argument("--spect", help="reference SPECT (NIfTI, Bq/mL): helps the built-in organs where they are hot "
                   "(atlas: veto, partial-volume rim, uptake growth; rules: kidney hot spot); lesions")
    p.add_argument("--out", required=True, help="output folder (e.g. results/P/segment)")
    p.add_argument("--backend", choices=BACKENDS, default="builtin")
    p.add_argument("--masks", help="label map / DICOM SEG / RTSTRUCT file or TotalSegmentator folder")
    p.add_argument("--mapping", help="JSON name -> label value for --backend nifti (default: labels.json "
                                     "beside the map, else the DESIGN ids)")
    p.add_argument("--marrow-method", choices=("eroded", "spheres"), default="eroded")
    p.add_argument("--marrow-margin-mm", type=float, default=4.0,
                   help="distance of the marrow VOI from cortex, endplates and lesions (mm)")
    p.add_argument("--marrow-sphere-radius-mm", type=float, default=8.0)
    p.add_argument("--lumbar-count", type=int, default=5,
                   help="number of lumbar vertebrae (built-in; 6 or 4 for transitional anatomy)")
    p.add_argument("--vertebra-level", metavar="NAME@Z_MM",
                   help="manual level anchor, e.g. L3@-215: the vertebra whose body contains z = -215 mm "
                        "(RAS+, superior coordinate of the CT) is L3; overrides the level vote")
    p.add_argument("--lesions-from-spect", action="store_true", help="built-in: SPECT hot spots as lesions")
    p.add_argument("--no-organ-lesions", dest="organ_lesions", action="store_false",
                   help="built-in with --spect: keep hot lesions inside the liver and spleen in the organ "
                        "(default: those above twice the parenchyma's SPECT level are labelled apart as "
                        "lesions 100+, so that the organ's dose is its parenchyma's)")
    p.add_argument("--atlas", default="auto", metavar="PATH|auto|none",
                   help="built-in: kidneys, liver and spleen by atlas registration: a folder of labelled CTs "
                        "(<name>/ct.nii.gz + labels.nii.gz) or the OpenDose ICRP-110 zip; 'auto' uses "
                        "$SPECTDOSE_ATLAS or ../shared/data/icrp110/ beside spectdose when present "
                        "(default auto, as in the workflow's config; none: the rules)")
    p.add_argument("--qc", choices=("fail", "warn"), default="fail",
                   help="what a failing QC check does: stop the stage (fail, default) or go on with a "
                        "warning after a physicist has looked at the masks (warn)")
    p.add_argument("--absent-organ", action="append", default=[], choices=("kidney_left", "kidney_right",
                   "spleen"), help="an organ the patient does not have (nephrectomy, splenectomy); repeatable")
    p.add_argument("--evaluate", metavar="REFERENCE_LABELS",
                   help="reference label map (NIfTI, DESIGN ids or --reference-mapping): print per organ "
                        "Dice, volume error and centroid distance and whether L2, L3, L4 match; written to "
                        "evaluation.json")
    p.add_argument("--reference-mapping", help="JSON name -> label value of the --evaluate map")
    p.add_argument("--reference-levels", help="JSON level name -> [z_lo_mm, z_hi_mm] (RAS+) of the reference "
                                              "vertebrae (default: read from the reference L2-L4 mask)")
    p.add_argument("--patient-id", default=None, help="pseudonymous id for the sidecar")
    return p


def _structure_rows(labels: np.ndarray, ct_hu: np.ndarray, voxel_ml: float, vocab: dict):
    rows = structure_stats(labels, ct_hu, voxel_ml, {k: v for k, v in vocab.items() if k != L.VERTEBRAE_L2L4})
    if L.VERTEBRAE_L2L4 in vocab:
        # whole vertebral bodies = label 5 (marrow VOI) + label 6 (rest of the bodies)
        whole = np.where(np.isin(labels, (L.MARROW_L2L4, L.VERTEBRAE_L2L4)), L.VERTEBRAE_L2L4, 0)
        rows += structure_stats(whole, ct_hu, voxel_ml, {L.VERTEBRAE_L2L4: vocab[L.VERTEBRAE_L2L4]})
    return sorted(rows, key=lambda r: r.label)


def organs_csv(rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["label", "name", "volume_ml", "mean_hu", "density_g_per_ml", "mass_g"])
    for r in rows:
        w.writerow([r.label, r.name, f"{r.volume_ml:.3f}", f"{r.mean_hu:.1f}", f"{r.density_g_per_ml:.4f}",
                    f"{r.mass_g:.3f}"])
    return buf.getvalue()


def segment(ct: Image, backend: str = "builtin", spect: Image | None = None, masks=None, mapping=None,
            marrow_method: str = "eroded", marrow_margin_mm: float = 4.0, marrow_sphere_radius_mm: float = 8.0,
            lumbar_count: int = 5, lesions_from_spect: bool = False, ct_path=None, absent_organs=(),
            vertebra_level=None, atlas=(), organ_lesions: bool = True):
    """Label map on the CT grid from one backend.

    With a SPECT, a vertebra whose marrow VOI holds focal uptake (a metastasis) is left out of
    the VOI, for every backend (:func:`pipeline.segment.marrow_uptake.exclude_hot_vertebrae`;
    ``info["marrow_uptake"]``, which the QC gate reports).

    Returns
    -------
    labels : Image
        uint16 label map (DESIGN ids).
    info : dict
        ``notes`` (list of str), ``vertebrae`` (levels, built-in only), ``backend``.
    """
    labels, info = _backend_labels(ct, backend, spect, masks, mapping, marrow_method, marrow_margin_mm,
                                   marrow_sphere_radius_mm, lumbar_count, lesions_from_spect, ct_path,
                                   absent_organs, vertebra_level, atlas, organ_lesions)
    if spect is not None:
        from .marrow_uptake import exclude_hot_vertebrae

        before = np.asarray(labels.array)
        labels, rec = exclude_hot_vertebrae(labels, spect)
        info["marrow_uptake"] = rec
        if rec["excluded"]:
            dropped = (before == L.MARROW_L2L4) & (np.asarray(labels.array) != L.MARROW_L2L4)
            if "outline_labels" in info:  # the gate's organs: the same VOI voxels
                o = np.asarray(info["outline_labels"].array)
                info["outline_labels"] = info["outline_labels"].with_array(
                    np.where(dropped, np.asarray(L.VERTEBRAE_L2L4, o.dtype), o))
            info["notes"].append(
                "marrow VOI: " + ", ".join(f"{n} ({rec['ratio_to_coldest'][n]:.2f} x the coldest vertebra's "
                                           "concentration)" for n in rec["excluded"])
                + " left out: focal uptake (a metastasis?); the marrow dose comes from the other vertebrae")
    return labels, info


def _backend_labels(ct, backend, spect, masks, mapping, marrow_method, marrow_margin_mm, marrow_sphere_radius_mm,
                    lumbar_count, lesions_from_spect, ct_path, absent_organs, vertebra_level, atlas, organ_lesions):
    """:func:`segment`'s label map and info from one backend, before the marrow VOI's uptake check."""
    from . import assemble, import_masks

    notes: list[str] = []
    info = {"backend": backend, "notes": notes}
    marrow_kw = dict(marrow_method=marrow_method, marrow_margin_mm=marrow_margin_mm,
                     marrow_sphere_radius_mm=marrow_sphere_radius_mm, absent_organs=tuple(absent_organs))
    if backend == "builtin":
        from .builtin import BuiltinOptions, segment_builtin

        opts = BuiltinOptions(lumbar_count=lumbar_count, marrow_method=marrow_method,
                              marrow_margin_mm=marrow_margin_mm, marrow_sphere_radius_mm=marrow_sphere_radius_mm,
                              lesions_from_spect=lesions_from_spect, vertebra_level=vertebra_level,
                              atlas=tuple(atlas), absent_organs=tuple(absent_organs))
        res = segment_builtin(ct, spect, opts)
        notes += res.notes
        info["organ_method"] = res.organ_method
        info["vertebrae"] = res.vertebrae
        info["level_vote"] = res.level_vote
        info["levels_z_mm"] = {n: tuple(v["z_range_ras_mm"]) for n, v in res.vertebrae.items() if n != "?"}
        lab = np.asarray(res.labels.array)
        present = {L.FIXED_LABELS[i] for i in L.FIXED_LABELS if np.any(lab == i)}
        empty = [n for n in L.ORGAN_NAMES if n not in present and n not in absent_organs]
        if empty:
            raise InputError(ct_path, f"built-in segmenter found no {', '.join(empty)} in this CT "
                                      "(see the notes above / provide masks with --backend nifti)")
        if organ_lesions and spect is not None:
            from .organ_lesions import label_organ_lesions

            out, rec, lesion_notes = label_organ_lesions(res.labels, spect)
            notes += lesion_notes
            info["organ_method"]["organ_lesions"] = rec
            if any(r.get("labels") for r in rec.values()):
                info["outline_labels"] = res.labels  # the QC gate's organs (run_gate)
            return out, info
        return res.labels, info
    if backend == "totalsegmentator":
        from .totalsegmentator import run_totalsegmentator

        if ct_path is None:
            raise InputError(None, "the totalsegmentator backend needs the CT as a file")
        with tempfile.TemporaryDirectory(prefix="spectdose_totalseg_out_") as tmp:
            folder = run_totalsegmentator(ct_path, tmp)
            structures = import_masks.read_totalsegmentator_folder(folder, ct, notes)
            notes.append("masks: TotalSegmentator task 'total' run offline on the CT")
            labels = assemble.assemble_labels(ct, structures, ct_path, notes, full_vertebrae=True, **marrow_kw)
        _independent_levels(ct, info, lumbar_count, vertebra_level)
        return labels, info
    if masks is None:
        raise InputError(None, f"--backend {backend} needs --masks")
    if backend == "nifti":
        mp = import_masks.read_mapping(mapping) if isinstance(mapping, (str, Path)) else mapping
        structures = import_masks.read_nifti_labels(masks, ct, mp, notes)
        full = False
    elif backend == "dicom-seg":
        structures, full = import_masks.read_dicom_seg(masks, ct, notes), False
    elif backend == "rtstruct":
        structures, full = import_masks.read_rtstruct(masks, ct, notes), False
    elif backend == "totalsegmentator-output":
        structures, full = import_masks.read_totalsegmentator_folder(masks, ct, notes), True
    else:
        raise InputError(None, f"unknown backend {backend!r}")
    labels = assemble.assemble_labels(ct, structures, masks, notes, full_vertebrae=full, **marrow_kw)
    _independent_levels(ct, info, lumbar_count, vertebra_level)
    return labels, info


def _independent_levels(ct: Image, info: dict, lumbar_count: int, vertebra_level=None) -> None:
    """Levels found on the CT alone, for the QC gate to check the imported L2-L4 mask against
    (none when the CT's own level vote refuses: the check is then skipped, said in qc.json)."""
    from .spine_ct import spine_levels_mm

    try:
        levels, spine = spine_levels_mm(ct, lumbar_count=lumbar_count, anchor_level=vertebra_level)
    except ValueError as exc:  # an anchor that names no vertebra
        raise InputError("--vertebra-level", str(exc)) from None
    info["levels_z_mm"] = levels
    info["level_vote"] = spine.levels
    info["notes"].extend(f"spine analysis of the CT (QC of the imported L2-L4): {n}" for n in spine.notes)


class GateFailure(InputError):
    """The QC gate failed; ``record`` is the QC record for the rejected masks."""

    def __init__(self, path, problem, record):
        super().__init__(path, problem)
        self.record = record


def run_gate(ct: Image, labels: Image, info: dict, spect: Image | None = None, absent_organs=(),
             mode: str = "fail", source=None) -> dict:
    """Run the QC gate on ``labels``; raise on a failing check unless ``mode`` is ``"warn"``.

    When ``segment`` labelled hot lesions of the liver or spleen apart, ``info["outline_labels"]``
    holds the organs before that: the checks run on those outlines (a liver perforated by the
    lesions it held is not a badly shaped liver), ``hot_lesion_fraction`` on ``labels``.

    Returns the QC record (dict for ``qc.json``). In ``warn`` mode failing
    checks are kept as ``fail`` in the record, and ``overridden`` says so.
    Raises :class:`GateFailure` (an InputError carrying the record) otherwise.
    """
    from .gate import Check, check_segmentation

    outline = info.get("outline_labels")
    res = check_segmentation(ct, labels if outline is None else outline, spect=spect, levels=info.get("levels_z_mm"),
                             absent_organs=tuple(absent_organs), level_vote=info.get("level_vote"),
                             parenchyma=None if outline is None else labels,
                             marrow_uptake=info.get("marrow_uptake"))
    if info.get("atlas_missing"):
        # the rules are what took bowel loops for both kidneys on issue 14's held-back real CT
        res.checks.append(Check("organs", "method", None, "", "warn", "atlas registration",
                                "issue 14: on a real low-dose CT the rules took bowel loops for both kidneys "
                                "(kidney doses 74-93 % low); kidneys, liver and spleen by atlas registration held "
                                "on the real and ICRP-110 development CTs",
                                "no atlas found (--atlas auto): kidneys, liver and spleen by the rules; give the "
                                "ICRP-110 zip with --atlas or $SPECTDOSE_ATLAS (workflow: segment.atlas)"))
    fails = res.by_status("fail")
    record = res.as_dict()
    record.update(mode=mode, overridden=bool(fails) and mode == "warn", backend=info.get("backend"),
                  levels=info.get("level_vote"), organ_method=info.get("organ_method"),
                  marrow_uptake=info.get("marrow_uptake"))
    if fails and mode != "warn":
        more = f" (+{len(fails) - 1} more failing: " + ", ".join(
            f"{c.structure} {c.check}" for c in fails[1:]) + ")" if len(fails) > 1 else ""
        raise GateFailure(source, fails[0].line() + more
                          + "; check the masks, then rerun with --qc warn (workflow: segment.qc: warn) "
                            "to go on", record)
    return record


def _evaluate(args, ct: Image, labels: Image, info: dict) -> dict:
    """Agreement of ``labels`` with the reference of ``--evaluate`` (see :mod:`.evaluate`)."""
    from ..atomic import read_json
    from .evaluate import compare_labels, compare_levels, levels_from_labels

    ref, _ = read_image(args.evaluate, unit="label")
    arr = np.asarray(ref.array)
    if args.reference_mapping:
        mapping = read_json(args.reference_mapping, "reference mapping")
        out = np.zeros(arr.shape, np.uint16)
        for name, value in mapping.items():
            out[arr == int(value)] = L.name_to_id(name)
        ref = ref.with_array(out)
    if args.reference_levels:
        ref_levels = {k: tuple(v) for k, v in read_json(args.reference_levels, "reference levels").items()}
    else:
        ref_levels = levels_from_labels(ref)
    test_levels = {n: 0.5 * (lo + hi) for n, (lo, hi) in levels_from_labels(labels).items()}
    return {"reference": Path(args.evaluate).name, "organs": compare_labels(labels, ref),
            "levels": compare_levels(test_levels, ref_levels),
            "level_source": "given" if args.reference_levels else "reference L2-L4 mask"}


def write_outputs(out_dir, ct: Image, labels: Image, info: dict, patient_id=None, sources=(),
                  qc: dict | None = None, evaluation: dict | None = None) -> Path:
    """Write labels.nii.gz (+ sidecar), labels.json, organs.csv, qc.json and qc.png into ``out_dir`` atomically."""
    from .qc import qc_figure

    lab = np.asarray(labels.array).astype(np.uint16)
    vocab = L.vocabulary_for(lab)
    rows = _structure_rows(lab, np.asarray(ct.array), ct.voxel_volume_ml, vocab)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        # labels.json is both the NIfTI sidecar of labels.nii.gz (same stem) and the vocabulary
        side = make_sidecar("labels", "label", method=f"spectdose segment ({info.get('backend')})",
                            patient_id=patient_id, sources=[str(s) for s in sources if s])
        write_image(tmp / "labels.nii.gz", labels.with_array(lab, unit="label"), side, dtype=np.uint16)
        L.write_vocabulary(tmp / "labels.json", vocab, **side, backend=info.get("backend"),
                           notes=info.get("notes", []), vertebrae=info.get("vertebrae", {}),
                           label_rules="one label per voxel; whole L2-L4 bodies = labels 5 + 6; "
                                       "organs exclude lesions",
                           density_calibration="Schneider et al. 2000, Phys Med Biol 45:459")
        write_text(tmp / "organs.csv", organs_csv(rows))
        if qc is not None:
            write_json(tmp / "qc.json", {**side, "quantity": "segmentation QC", **qc})
        if evaluation is not None:
            write_json(tmp / "evaluation.json", {**side, "quantity": "agreement with a reference", **evaluation})
        qc_figure(tmp / "qc.png", ct, labels.with_array(lab, unit="label"), vocab,
                  title=f"spectdose segment ({info.get('backend')})")
    return out_dir


def _run(args) -> int:
    from ..cli_checks import check_patient_id, require_file, require_output_dir

    if args.patient_id is not None:
        check_patient_id(args.patient_id)
    require_file(args.ct, "CT")
    for path, what in ((args.spect, "SPECT"), (args.evaluate, "reference label map"),
                       (args.reference_mapping, "reference mapping"), (args.reference_levels, "reference levels"),
                       (args.mapping, "mask mapping")):
        if path:
            require_file(path, what)
    require_output_dir(args.out)
    ct, _ = read_image(args.ct, unit="HU")
    spect = None
    if args.spect:
        spect, _ = read_image(args.spect, unit="Bq/mL")
    atlas, atlas_missing = (), False
    if args.backend == "builtin":
        from .atlas_store import load_atlas

        atlas = load_atlas(args.atlas)
        atlas_missing = str(args.atlas).lower() != "none" and not atlas
        if atlas_missing:
            print("note: no atlas found (--atlas auto): kidneys, liver and spleen by the rules")
    labels, info = segment(ct, args.backend, spect=spect, masks=args.masks, mapping=args.mapping,
                           marrow_method=args.marrow_method, marrow_margin_mm=args.marrow_margin_mm,
                           marrow_sphere_radius_mm=args.marrow_sphere_radius_mm, lumbar_count=args.lumbar_count,
                           lesions_from_spect=args.lesions_from_spect, ct_path=args.ct,
                           absent_organs=args.absent_organ, vertebra_level=args.vertebra_level, atlas=atlas,
                           organ_lesions=args.organ_lesions)
    info["atlas_missing"] = atlas_missing
    for note in info["notes"]:
        print(f"note: {note}")
    try:
        qc = run_gate(ct, labels, info, spect, args.absent_organ, args.qc,
                      source=args.masks if args.masks else args.ct)
    except GateFailure as exc:
        # the rejected masks, their QC record and figure go beside the output folder (never into it),
        # so that the physicist can look before deciding on --qc warn
        rejected = Path(str(args.out).rstrip("/") + "_rejected")
        write_outputs(rejected, ct, labels, info, args.patient_id, qc=exc.record)
        raise InputError(exc.path, f"{exc.problem}; the rejected masks and qc.png are in {rejected}") from None
    evaluation = _evaluate(args, ct, labels, info) if args.evaluate else None
    write_outputs(args.out, ct, labels, info, args.patient_id, sources=(Path(args.ct).name,
                  Path(args.spect).name if args.spect else None, Path(args.masks).name if args.masks else None),
                  qc=qc, evaluation=evaluation)
    if evaluation is not None:
        from .evaluate import format_label_table, format_level_table

        print(f"evaluation against {args.evaluate}:")
        print(format_label_table(evaluation["organs"]))
        print(format_level_table(evaluation["levels"]))
    for c in qc["checks"]:
        if c["status"] in ("warn", "fail"):
            print(f"qc {c['status']}: {c['structure']}: {c['check']} ({c['value']} {c['unit']}, expected "
                  f"{c['expected']})")
    print(f"spectdose segment: QC {qc['status']}" + (" (failing checks overridden by --qc warn)"
                                                      if qc["overridden"] else ""))
    print(f"spectdose segment: wrote {args.out}")
    return 0


def main(argv=None) -> int:
    from ..memory import keep_large_blocks_in_heap

    keep_large_blocks_in_heap()  # full-resolution CTs: freed temporaries reused, not re-zeroed (pipeline.memory)
    return run_stage("spectdose segment", build_parser(), _run, argv)
