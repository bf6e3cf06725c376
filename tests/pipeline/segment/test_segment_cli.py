"""``spectdose segment`` command line: outputs and bad input."""

import csv
import json

import numpy as np

from pipeline.imageio import read_image, write_image
from pipeline.segment.cli import main
from pipeline.segment.density import hu_to_density_g_per_ml


def _write_inputs(tmp_path, labels, ct):
    write_image(tmp_path / "ct.nii.gz", ct, {"quantity": "ct"})
    write_image(tmp_path / "masks.nii.gz", labels, {"quantity": "labels"})
    return tmp_path / "ct.nii.gz", tmp_path / "masks.nii.gz"


def test_nifti_backend_writes_labels_vocabulary_table_and_qc(tmp_path, phantom_axial):
    labels, ct = phantom_axial
    ct_path, masks = _write_inputs(tmp_path, labels, ct)
    out = tmp_path / "segment"
    # the toy organs are far smaller than adult organs: the QC gate fails them, --qc warn goes on
    assert main(["--ct", str(ct_path), "--backend", "nifti", "--masks", str(masks), "--out", str(out),
                 "--qc", "warn"]) == 0
    qc = json.loads((out / "qc.json").read_text())
    assert qc["status"] == "fail" and qc["overridden"] and qc["mode"] == "warn"
    lab, side = read_image(out / "labels.nii.gz")
    assert lab.same_grid(ct) and side["unit"] == "label"
    vocab = json.loads((out / "labels.json").read_text())["labels"]
    assert vocab["3"] == "liver" and vocab["6"] == "vertebrae_L2L4"
    rows = {r["name"]: r for r in csv.DictReader((out / "organs.csv").open())}
    arr = np.asarray(labels.array)
    # liver: independent count on the input map; density from the published line at 60 HU
    n = int(np.sum(arr == 3))
    assert float(rows["liver"]["volume_ml"]) == np.round(n * ct.voxel_volume_ml, 3)
    assert float(rows["liver"]["mass_g"]) == np.round(n * ct.voxel_volume_ml * (1.003 + 1.169e-3 * 60), 3)
    # whole L2-L4 bodies = input label 6 incl. its core (the marrow VOI is derived inside it)
    assert float(rows["vertebrae_L2L4"]["volume_ml"]) == np.round(np.isin(arr, (5, 6)).sum() * ct.voxel_volume_ml, 3)
    assert (out / "qc.png").stat().st_size > 10000
    assert hu_to_density_g_per_ml([60.0])[0] == 1.003 + 1.169e-3 * 60


def test_empty_organ_exits_2_naming_the_organ(tmp_path, phantom_axial, capsys):
    labels, ct = phantom_axial
    arr = np.asarray(labels.array).copy()
    arr[arr == 1] = 7  # no left kidney
    ct_path, masks = _write_inputs(tmp_path, labels.with_array(arr), ct)
    rc = main(["--ct", str(ct_path), "--backend", "nifti", "--masks", str(masks), "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "kidney_left" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_totalsegmentator_backend_without_weights_exits_2_with_instructions(tmp_path, phantom_axial, capsys,
                                                                           monkeypatch):
    from pipeline.segment import totalsegmentator as ts

    labels, ct = phantom_axial
    ct_path, _ = _write_inputs(tmp_path, labels, ct)
    monkeypatch.setattr(ts, "find_executable", lambda: "/opt/TotalSegmentator")  # "installed"
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(tmp_path / "no_weights"))
    rc = main(["--ct", str(ct_path), "--backend", "totalsegmentator", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "never downloads" in err and "TOTALSEG_WEIGHTS_PATH" in err


def test_failing_qc_gate_exits_2_with_one_line_and_writes_nothing(tmp_path, phantom_axial, capsys):
    labels, ct = phantom_axial
    ct_path, masks = _write_inputs(tmp_path, labels, ct)
    rc = main(["--ct", str(ct_path), "--backend", "nifti", "--masks", str(masks), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    # the toy left kidney holds 3.5 mL: named with its check, value and the expected range
    assert err[0].startswith(f"spectdose segment: error: {masks}: kidney_left: volume_ml (3.5")
    assert "expected 70-300 mL" in err[0] and "--qc warn" in err[0]
    assert not (tmp_path / "o").exists()
    # the rejected masks are kept beside it, with their QC record, for the physicist to look at
    rejected = tmp_path / "o_rejected"
    assert f"rejected masks and qc.png are in {rejected}" in err[0]
    qc = json.loads((rejected / "qc.json").read_text())
    assert qc["status"] == "fail" and not qc["overridden"] and (rejected / "qc.png").is_file()


def test_folder_for_ct_and_bad_patient_id_are_one_line_errors(tmp_path, phantom_axial, capsys):
    labels, ct = phantom_axial
    ct_path, masks = _write_inputs(tmp_path, labels, ct)
    rc = main(["--ct", str(tmp_path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "is a folder; expected the CT" in err[0]
    rc = main(["--ct", str(ct_path), "--backend", "nifti", "--masks", str(masks), "--out", str(tmp_path / "o"),
               "--patient-id", "../x"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "not a valid patient id" in err[0]
    assert not (tmp_path / "o").exists()


def test_builtin_without_an_atlas_found_warns_that_the_rules_made_the_organs(tmp_path, small_ct, monkeypatch):
    # --atlas auto (the default) with no atlas on this machine falls back to the rules: the rules
    # are what took bowel for kidneys on a real CT, so the QC record says so in red; asked for
    # explicitly (--atlas none) it is the user's choice and no such check appears
    import sample_data.icrp110 as icrp110

    monkeypatch.delenv("SPECTDOSE_ATLAS", raising=False)
    monkeypatch.setattr(icrp110, "default_zip_path", lambda: tmp_path / "no_atlas.zip")
    ct_path = tmp_path / "ct.nii.gz"
    write_image(ct_path, small_ct, {"quantity": "ct"})
    assert main(["--ct", str(ct_path), "--out", str(tmp_path / "auto")]) == 0
    qc = json.loads((tmp_path / "auto" / "qc.json").read_text())
    method = [c for c in qc["checks"] if c["structure"] == "organs" and c["check"] == "method"]
    assert len(method) == 1 and method[0]["status"] == "warn" and qc["status"] == "warn"
    assert main(["--ct", str(ct_path), "--out", str(tmp_path / "none"), "--atlas", "none"]) == 0
    qc = json.loads((tmp_path / "none" / "qc.json").read_text())
    assert not [c for c in qc["checks"] if c["check"] == "method"]


def test_builtin_leaves_a_declared_absent_organ_out_of_the_label_map(tmp_path, small_ct):
    # splenectomy declared: the rules' spleen is dropped (its voxels stay body), its absence passes
    import nibabel as nib

    ct_path = tmp_path / "ct.nii.gz"
    write_image(ct_path, small_ct, {"quantity": "ct"})
    out = tmp_path / "o"
    assert main(["--ct", str(ct_path), "--out", str(out), "--atlas", "none", "--absent-organ", "spleen"]) == 0
    lab = np.asarray(nib.load(out / "labels.nii.gz").dataobj)
    assert not np.any(lab == 4) and np.any(lab == 1) and np.any(lab == 3)
    qc = json.loads((out / "qc.json").read_text())
    spleen = [c for c in qc["checks"] if c["structure"] == "spleen"]
    assert [(c["check"], c["status"], c["expected"]) for c in spleen] == [("present", "pass", "absent (declared)")]
    assert not [c for c in qc["checks"] if c["status"] == "fail"]  # (the rules' kidneys warn on their shape here)
