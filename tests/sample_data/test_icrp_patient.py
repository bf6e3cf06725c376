"""The ICRP-110 real-anatomy patient and the whole workflow on it against the truth.

The patient and workflow tests skip when ``../shared/data/icrp110/Input_GateLab_2019-04-02.zip``
is absent.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sample_data.icrp_patient import compartment_of, generate_icrp_patient
from sample_data.icrp110 import default_zip_path
from sample_data.kinetics import compartments_for, evaluate

ZIP = default_zip_path()
needs_phantoms = pytest.mark.skipif(not ZIP.is_file(), reason=f"ICRP-110 phantoms not found at {ZIP}")


def test_icrp_tissues_go_to_the_kinetic_compartment_of_their_kind():
    assert compartment_of("Blood") == "blood" and compartment_of("Heart") == "blood"
    assert compartment_of("Lumbar_spine+spongiosa") == "marrow"
    assert compartment_of("Humeri_and_femora+upper_halves+medullary_cavity") == "marrow"
    assert compartment_of("Mineral_bone") == "bone" and compartment_of("Cartilage") == "bone"
    assert compartment_of("Lung_tissue_(compressed_lungs)") == "lung"
    assert compartment_of("Muscle_tissue") == "muscle" and compartment_of("Adipose_tissue") == "fat"
    assert compartment_of("Small_intestine") == "bowel" and compartment_of("Gastro-intestinal_tract_-_contents") == "bowel"
    assert compartment_of("Urine") == "bladder" and compartment_of("Air_outside_body") == "air"
    assert compartment_of("Pancreas") == "soft_low"
    assert set(compartment_of(n) for n in ("Blood", "Urine", "Muscle_tissue")) <= set(compartments_for("Lu-177"))


@pytest.fixture(scope="module")
def patient(tmp_path_factory):
    if not ZIP.is_file():
        pytest.skip(f"ICRP-110 phantoms not found at {ZIP}")
    out = tmp_path_factory.mktemp("icrp") / "AF_4mm"
    return generate_icrp_patient(out, "AF", (4.0, 4.0, 5.0), times_h=(4.0, 24.0))


@needs_phantoms
def test_the_patient_holds_the_organ_activities_of_the_kinetics_and_its_spect_the_total(patient):
    """Organ totals are injected x f(t) of their compartment (exact by construction of the
    shares); the SPECT (PSF blur, Poisson noise, 4.8 mm) holds the body's total activity within
    1 % (blur and resampling conserve it; Poisson noise of about 10^6 counts: 0.1 %)."""
    from kernels.decay import load_decay
    from pipeline.imageio import read_image

    truth = json.loads((patient / "truth" / "truth.json").read_text())
    lp = load_decay("Lu-177").decay_constant_per_h
    comps = compartments_for("Lu-177")
    for organ in ("kidney_left", "kidney_right", "liver", "spleen"):
        c = comps[organ]
        expect = 7400.0 * evaluate(c.model, c.parameters, np.array([4.0, 24.0]), lp)
        np.testing.assert_allclose(truth["organs"][organ]["activity_mbq"], expect, rtol=1e-5, err_msg=organ)
    for n, tp in enumerate(truth["time_points"]):
        sp, side = read_image(patient / "nifti" / f"{tp['id']}_spect.nii.gz")
        total_mbq = float(np.asarray(sp.array, np.float64).sum() * sp.voxel_volume_ml / 1e6)
        assert total_mbq == pytest.approx(tp["total_activity_mbq"], rel=0.01), tp["id"]
        assert side["unit"] == "Bq/mL" and side["time_h"] == tp["time_h"]
    tia, _ = read_image(patient / "truth" / "tia.nii.gz")
    labels, _ = read_image(patient / "truth" / "labels.nii.gz")
    kidney_mbq_h = float(np.asarray(tia.array, np.float64)[np.asarray(labels.array) == 1].sum() * tia.voxel_volume_ml)
    assert kidney_mbq_h == pytest.approx(truth["organs"]["kidney_left"]["tia_mbq_h"], rel=1e-4)


@needs_phantoms
def test_the_patient_comes_with_the_other_phantom_as_its_only_atlas(patient):
    from pipeline.segment.atlas_store import read_atlas

    subjects = read_atlas(patient / "atlas_without_AF")
    assert [s.name for s in subjects] == ["ICRP110_AM"]


@needs_phantoms
def test_a_moving_patient_in_dicom_is_ingested_with_its_activity_and_its_pose_recorded(tmp_path):
    """DICOM sessions (a CT series and an NM file each) of a patient moved by up to 10 mm and
    3 degrees: the ingest reads the moved session with the activity of the truth (1 %: Poisson
    noise and the activity moved across the field of view's edge), and the pose is in the truth."""
    from pipeline.imageio import read_image
    from pipeline.ingest.cli import main as ingest

    patient = generate_icrp_patient(tmp_path / "p", "AF", (4.0, 4.0, 5.0), times_h=(4.0, 24.0),
                                    motion_mm=10.0, motion_deg=3.0, fmt="dicom")
    truth = json.loads((patient / "truth" / "truth.json").read_text())
    assert truth["time_points"][0]["pose_lps"] is None
    pose = np.array(truth["time_points"][1]["pose_lps"]["matrix_ras"])
    assert sorted(p.name for p in (patient / "dicom" / "t24h").iterdir()) == ["ct", "spect"]
    assert ingest([str(patient / "manifest.yaml"), "--patient-id", "ICRPAF01", "--time-point", "t24h",
                   "--out", str(tmp_path / "ingest")]) == 0
    sp, _ = read_image(tmp_path / "ingest" / "t24h" / "spect.nii.gz")
    total_mbq = float(np.asarray(sp.array, np.float64).sum() * sp.voxel_volume_ml / 1e6)
    assert total_mbq == pytest.approx(truth["time_points"][1]["total_activity_mbq"], rel=0.01)
    # the session's CT shows the patient where the recorded pose puts it: the 24 h CT pulled back
    # through matrix_lps matches the 4 h CT (new noise in each) far better than as it lies
    import SimpleITK as sitk

    from pipeline.imageio import to_sitk

    assert ingest([str(patient / "manifest.yaml"), "--patient-id", "ICRPAF01", "--time-point", "t4h",
                   "--out", str(tmp_path / "ingest")]) == 0
    ref_ct, _ = read_image(tmp_path / "ingest" / "t4h" / "ct.nii.gz")
    ses_ct, _ = read_image(tmp_path / "ingest" / "t24h" / "ct.nii.gz")
    m = np.array(truth["time_points"][1]["pose_lps"]["matrix_lps"])
    tx = sitk.AffineTransform(3)
    tx.SetMatrix(m[:3, :3].ravel().tolist())
    tx.SetTranslation(m[:3, 3].tolist())
    fixed = to_sitk(ref_ct.with_array(np.asarray(ref_ct.array, np.float32)))
    moving = to_sitk(ses_ct.with_array(np.asarray(ses_ct.array, np.float32)))
    a = sitk.GetArrayFromImage(fixed)
    corr = {}
    for name, t in (("as it lies", sitk.Transform()), ("pulled back", tx)):
        b = sitk.GetArrayFromImage(sitk.Resample(moving, fixed, t, sitk.sitkLinear, -5000.0))
        inside = (a > -300) & (b > -4000)  # the body, where the moved session has data
        corr[name] = float(np.corrcoef(a[inside], b[inside])[0, 1])
    # measured 0.84 against 0.26 (each CT has its own noise, 17 HU, and its own colon gas)
    assert corr["pulled back"] > 0.75 and corr["pulled back"] > corr["as it lies"] + 0.3, corr


@needs_phantoms
def test_a_patient_can_be_imaged_over_a_clinical_field_of_view_from_the_lung_bases_to_the_sacrum(tmp_path):
    from pipeline.imageio import read_image
    from sample_data.icrp110 import default_zip_path, fov_z_range, load_phantom

    patient = generate_icrp_patient(tmp_path / "p", "AF", (4.0, 4.0, 5.0), times_h=(4.0, 24.0), fov="bases:40:10")
    truth = json.loads((patient / "truth" / "truth.json").read_text())
    assert truth["imaging"]["field_of_view"] == "bases:40:10"
    ct, _ = read_image(patient / "nifti" / "t4h_ct.nii.gz")
    z = ct.index_to_world(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, ct.shape[2] - 1.0]]))[:, 2]
    lo, hi = fov_z_range(load_phantom(default_zip_path(), "AF"), "bases:40:10")
    # the slices' centres lie inside the field of view, within a phantom slice (4.84 mm) and a CT
    # slice (5 mm) of its ends (measured 0.0 and 8.1 mm)
    assert lo - 1e-3 <= z.min() < lo + 10.0 and hi - 10.0 < z.max() <= hi + 1e-3, (z, lo, hi)


@pytest.mark.slow
@needs_phantoms
def test_the_workflow_on_a_real_anatomy_patient_gives_organ_doses_near_the_truth(tmp_path):
    """The whole workflow (ingest, registration, atlas segmentation with the other phantom only,
    kinetics, dose) on the ICRP-110 female at 3 mm with four Lu-177 sessions, against the truth
    as imaged (the true TIA blurred by the PSF, the true masks, the same dose engine).

    Measured: with the reference masks imported, kidneys +1.4 / +1.3 %, liver 0.0 %, spleen +0.3 %
    (3 %); with the built-in segmentation, kidneys +4.1 / +0.1 %, liver +0.5 %, spleen +3.0 %; the
    male the same way -2.2..+5.5 % (spleen): 6 %. Without partial-volume correction the doses stay
    9-12 % below the unblurred truth (kidneys), which this test does not judge."""
    from sample_data.icrp_validation import compare_doses, run_workflow

    patient = generate_icrp_patient(tmp_path / "patient", "AF", (3.0, 3.0, 3.0))
    for segmentation, tolerance_pct in (("truth", 3.0), ("loo", 6.0)):
        code, res = run_workflow(patient, tmp_path / segmentation, segmentation, cores=2)
        assert code == 0, segmentation
        for row in compare_doses(patient, res):
            print(segmentation, row)
            assert abs(row["error_vs_imaged_pct"]) < tolerance_pct, (segmentation, row)
        qc = json.loads((res / "segment" / "qc.json").read_text())
        assert qc["status"] in ("pass", "warn"), segmentation
