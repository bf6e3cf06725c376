"""A small synthetic patient folder with every file the report reads, for the fast report tests.

Volumes: a 60 x 50 x 40 CT grid (4 mm) stored with the DICOM-like axis flips (i towards the
patient's left, j towards posterior), an elliptic body, two kidneys (left kidney at RAS x < 0,
hotter), a liver on the right, an L3 body on the midline; the dose is hottest in the left kidney.
"""

from __future__ import annotations

import csv
import json

import numpy as np

AFFINE_LPS_LIKE = np.array([[-4.0, 0, 0, 118.0], [0, -4.0, 0, 98.0], [0, 0, 4.0, -78.0], [0, 0, 0, 1]])


def write_nifti(path, array, affine):
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(array), affine), str(path))


def phantom(affine, shape=(60, 50, 40)):
    """CT (HU), dose (Gy) and labels on ``affine``; anatomy defined in RAS mm, so any affine works."""
    idx = np.indices(shape).reshape(3, -1)
    world = (affine @ np.vstack([idx, np.ones(idx.shape[1])]))[:3].reshape((3,) + shape)
    x, y, z = world
    labels = np.zeros(shape, np.uint16)
    body = (x / 110.0) ** 2 + (y / 80.0) ** 2 <= 1.0
    labels[body] = 7
    liver = ((x - 55.0) / 40.0) ** 2 + ((y - 10) / 35) ** 2 + ((z - 20) / 30) ** 2 <= 1  # x = +55: right
    labels[liver] = 3
    left = ((x + 60.0) / 18) ** 2 + ((y + 30) / 15) ** 2 + (z / 35) ** 2 <= 1   # x = -60: patient's left
    right = ((x - 60.0) / 18) ** 2 + ((y + 30) / 15) ** 2 + (z / 35) ** 2 <= 1
    labels[left], labels[right] = 1, 2
    spine = (x / 15) ** 2 + ((y + 40) / 15) ** 2 <= 1
    labels[spine & (np.abs(z + 20) <= 12)] = 6
    ct = np.where(body, 40.0, -1000.0)
    ct[spine] = 500.0
    dose = np.zeros(shape, np.float32)
    dose[body] = 0.1
    dose[liver] = 1.5
    dose[right] = 2.5
    dose[left] = 3.0 + 1.0 * np.exp(-(((x + 60) ** 2 + (y + 30) ** 2 + (z - 8) ** 2) / 200.0))[left]
    return ct.astype(np.int16), dose, labels


ORGAN_ROWS = [
    {"label": "1", "name": "kidney_left", "n_voxels": "100", "volume_ml": "137.032", "mass_g": "143.221",
     "mean_gy": "3.05307", "median_gy": "3.20765", "min_gy": "0.217314", "max_gy": "4.4081", "d2_gy": "4.05012",
     "d50_gy": "3.20765", "d98_gy": "1.33507", "mean_gy_per_gbq": "0.412577",
     "mean_gy_relative_sd_kinetics": "0.0494747"},
    {"label": "2", "name": "kidney_right", "n_voxels": "100", "volume_ml": "133.171", "mass_g": "139.061",
     "mean_gy": "2.69335", "median_gy": "2.83726", "min_gy": "0.251841", "max_gy": "3.70099", "d2_gy": "3.4739",
     "d50_gy": "2.83726", "d98_gy": "1.3371", "mean_gy_per_gbq": "0.363966",
     "mean_gy_relative_sd_kinetics": "0.0498724"},
    {"label": "3", "name": "liver", "n_voxels": "1000", "volume_ml": "1604.64", "mass_g": "1718.24",
     "mean_gy": "1.49001", "median_gy": "1.23652", "min_gy": "0.0800557", "max_gy": "14.1624", "d2_gy": "7.82187",
     "d50_gy": "1.23652", "d98_gy": "0.504337", "mean_gy_per_gbq": "0.201353",
     "mean_gy_relative_sd_kinetics": "0.0474292"},
    {"label": "5", "name": "marrow_L2L4", "n_voxels": "50", "volume_ml": "38.8125", "mass_g": "43.603",
     "mean_gy": "0.382428", "median_gy": "0.390516", "min_gy": "0.221929", "max_gy": "0.537214",
     "d2_gy": "0.48688", "d50_gy": "0.390516", "d98_gy": "0.254095", "mean_gy_per_gbq": "0.0516795",
     "mean_gy_relative_sd_kinetics": "0.0503628"},
]

QC_PASS = {"name": "activity_in_fov_over_injected", "value": 0.368, "unit": "1", "expected": "<= 1.05",
           "source": "a camera cannot see more than was injected", "status": "pass", "subject": "t1h"}


def write_csv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def make_patient(root, with_volumes=True):
    """Write a complete synthetic ``results/<patient>`` folder under ``root``; returns its path."""
    p = root / "results" / "P7"
    for sub in ("dose", "kinetics", "segment", "register/t1h", "register/t24h", "ingest/t1h", "ingest/t24h"):
        (p / sub).mkdir(parents=True, exist_ok=True)
    write_csv(p / "dose" / "organ_doses.csv", ORGAN_ROWS)
    bed_rows = [{"label": r["label"], "name": r["name"], "mean_dose_gy": r["mean_gy"], "model": "mono",
                 "g_factor": "0.06", "alpha_beta_gy": "2.6", "repair_half_time_h": "2.8",
                 "bed_gy": f"{float(r['mean_gy']) * 1.08:.6g}", "eqd2_gy": f"{float(r['mean_gy']) * 0.6:.6g}"}
                for r in ORGAN_ROWS]
    write_csv(p / "dose" / "bed.csv", bed_rows)
    kid = {"alpha_beta_gy": 2.6, "repair_half_time_h": 2.8}
    (p / "dose" / "dose_provenance.json").write_text(json.dumps({
        "assumptions": {"method": "convolution", "density_correction": "dose x rho_medium / rho_local",
                        "hu_to_density": "Schneider et al. 2000 (pipeline.segment.density)",
                        "note": "<script>alert(1)</script>"},
        "settings": {"method": "convolution", "include_photons": True, "lq_default": kid,
                     "lq_by_organ": {"kidney_left": kid, "kidney_right": kid, "kidneys": kid},
                     "marrow": {"l2l4_share": 0.067}},
        "injected_activity_mbq": 7400.0,
        "kinetics": {"partial_volume_correction": "none", "options": {"pvc": "none"}},
        "qc": [dict(QC_PASS, name="energy_absorbed_over_emitted", subject="body")],
    }))
    (p / "dose" / "marrow.json").write_text(json.dumps({
        "method": "EANM 2010 image-based (L2-L4 VOI)", "red_marrow_tia_mbq_h": 5316.9, "red_marrow_mass_g": 1170.0,
        "absorbed_dose_gy": 0.38772344, "absorbed_dose_gy_per_gbq": 0.0523950,
        "assumptions": {"l2l4_share": 0.067, "reference": "Hindorf et al. EJNMMI 2010"}}))
    (p / "dose" / "planning.json").write_text(json.dumps({
        "activity_gbq": 38.1715, "limiting_organ": "red_marrow", "limiting_quantity": "absorbed_dose",
        "limit_value": 2,
        "allowed_activity_gbq": [{"organ": "kidneys", "quantity": "absorbed_dose", "limit": 23, "activity_gbq": 59.18},
                                 {"organ": "red_marrow", "quantity": "absorbed_dose", "limit": 2,
                                  "activity_gbq": 38.1715}],
        "organs": {"kidneys": {"absorbed_dose_gy": 14.83, "bed_gy": 20.80, "dose_limit_gy": 23, "bed_limit_gy": 40},
                   "red_marrow": {"absorbed_dose_gy": 2.0, "dose_limit_gy": 2, "bed_limit_gy": None}},
        "other_organs_at_planned_activity_gy": {"liver": 7.69}}))
    (p / "dose" / "dose.json").write_text(json.dumps({
        "method": "convolution", "kernel": {"nuclide": "Lu-177", "medium": "water", "voxel_size_mm": [4.8, 4.8, 4.8],
                                            "provenance": {"kind": "voxel S-values, direct Monte Carlo",
                                                           "physics": {"engine": "ompmc 0.4.0"}}},
        "software": "spectdose", "software_version": "0.1.0", "quantity": "absorbed_dose", "unit": "Gy"}))
    (p / "kinetics" / "fits.json").write_text(json.dumps({
        "patient_id": "P7", "radionuclide": "Lu-177", "injected_activity_mbq": 7400.0,
        "time_points": [{"id": "t1h", "time_h": 1.0}, {"id": "t24h", "time_h": 24.0}],
        "options": {"selection": "AICc", "pvc": "none"},
        "organs": {"kidney_left": {"method": "fit", "chosen_model": "uptake_washout", "tia_mbq_h": 5062.13,
                                   "tia_sd_mbq_h": 250.45, "tia_relative_sd": 0.0495, "warnings": []},
                   "marrow_L2L4": {"method": "fit", "chosen_model": "bi", "tia_mbq_h": 183.3, "tia_sd_mbq_h": 9.2,
                                   "tia_relative_sd": 0.0504, "warnings": []}},
        "warnings": ["only two time points"],
        "qc": [dict(QC_PASS, name="tia_share_before_first_point", subject="kidney_left")]}))
    (p / "segment" / "qc.json").write_text(json.dumps({"status": "warn", "overridden": False, "checks": [
        {"structure": "kidney_left", "check": "volume_ml", "value": 137.0, "unit": "mL", "status": "pass",
         "expected": "70-300 mL", "source": "a 'kidney' over 450 mL is not a kidney", "note": ""},
        {"structure": "spleen", "check": "volume_ml", "value": 812.0, "unit": "mL", "status": "warn",
         "expected": "50-700 mL", "source": "Prassopoulos 1997", "note": ""}]}))
    write_csv(p / "segment" / "organs.csv", [{"label": "1", "name": "kidney_left", "volume_ml": "137.032",
                                              "mean_hu": "32.7", "density_g_per_ml": "1.0452", "mass_g": "143.221"}])
    for tp, hours in (("t1h", 1.0), ("t24h", 24.0)):
        (p / "register" / tp / "qc.json").write_text(json.dumps({
            "status": "reference" if tp == "t24h" else "registered", "problems": [],
            "rigid": {"ct_correlation": {"before": 0.58, "after": 0.97}, "parameters": {"rotation_deg": 2.09}},
            "activity": {"relative_change_in_fov": 0.0001}}))
        (p / "ingest" / tp / "timepoint.json").write_text(json.dumps({
            "patient_id": "P7", "time_point": tp, "time_h": hours, "radionuclide": "Lu-177",
            "injected_activity_mbq": 7400.0, "injection_datetime": "2026-01-05T09:00:00",
            "total_activity_in_fov_mbq": 2711.09,
            "decay_correction": {"found": "NONE", "factor": 1.0, "note": "not decay corrected"},
            "warnings": [], "qc": [dict(QC_PASS, subject=tp)]}))
    (p / "segment" / "labels.json").write_text(json.dumps({"labels": {"1": "kidney_left", "2": "kidney_right",
                                                                      "3": "liver", "6": "vertebrae_L2L4",
                                                                      "7": "body"}}))
    if with_volumes:
        ct, dose, labels = phantom(AFFINE_LPS_LIKE)
        write_nifti(p / "register" / "reference_ct.nii.gz", ct, AFFINE_LPS_LIKE)
        write_nifti(p / "dose" / "dose_ct.nii.gz", dose, AFFINE_LPS_LIKE)
        write_nifti(p / "segment" / "labels.nii.gz", labels, AFFINE_LPS_LIKE)
    return p
