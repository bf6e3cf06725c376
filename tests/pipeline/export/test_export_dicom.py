"""`spectdose export-dicom`: RT Dose, Segmentation and Encapsulated PDF of a finished patient."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

import export_factory as fac
from pipeline.export.cli import main
from pipeline.export.rtdose import dose_grid_lps
from pipeline.image import Image


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    patient = fac.make_finished_patient(root)
    out = root / "out"
    assert main(["--patient-dir", str(patient.patient_dir), "--dicom", str(patient.dicom_dir),
                 "--out", str(out)]) == 0
    return patient, out


def test_objects_read_back_with_pydicom_and_carry_the_original_identifiers(exported):
    patient, out = exported
    ct = patient.ct_headers[0]
    for name, sop_class, modality in (("rtdose.dcm", "1.2.840.10008.5.1.4.1.1.481.2", "RTDOSE"),
                                      ("seg.dcm", "1.2.840.10008.5.1.4.1.1.66.4", "SEG"),
                                      ("report.dcm", "1.2.840.10008.5.1.4.1.1.104.1", "DOC")):
        ds = pydicom.dcmread(out / name)
        assert ds.SOPClassUID == sop_class and ds.Modality == modality
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        for key in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber"):
            assert str(ds[key].value) == fac.PHI[key], (name, key)
        assert ds.StudyInstanceUID == ct.StudyInstanceUID
        assert fac.PSEUDONYM not in str(ds.PatientName) + str(ds.PatientID)
    record = json.loads((out / "export.json").read_text())
    assert [o["file"] for o in record["objects"]] == ["rtdose.dcm", "seg.dcm", "report.dcm"]
    text = (out / "export.json").read_text()
    assert all(value not in text for value in fac.PHI.values())


def test_rt_dose_attributes_and_reference_to_the_ct_series(exported):
    patient, out = exported
    ds = pydicom.dcmread(out / "rtdose.dcm")
    ct_uids = {h.SOPInstanceUID for h in patient.ct_headers}
    assert (ds.DoseUnits, ds.DoseType) == ("GY", "PHYSICAL")
    assert ds.FrameOfReferenceUID == patient.ct_headers[0].FrameOfReferenceUID
    assert float(ds.DoseGridScaling) > 0 and ds.BitsAllocated == 16
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == patient.ct_headers[0].SeriesInstanceUID
    assert {r.ReferencedSOPInstanceUID for r in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence} == ct_uids
    assert {r.ReferencedSOPInstanceUID for r in ds.ReferencedImageSequence} == ct_uids
    peak = float(ds.DoseGridScaling) * ds.pixel_array.max()
    assert peak == pytest.approx(patient.dose.max(), rel=1e-4)


def _sitk_dose_at(path, points_lps):
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    scaling = float(pydicom.dcmread(path, stop_before_pixels=True).DoseGridScaling)
    values = []
    for p in points_lps:
        index = image.TransformPhysicalPointToContinuousIndex([float(v) for v in p])
        values.append(image.EvaluateAtContinuousIndex(index) * scaling)
    return np.array(values)


@pytest.mark.parametrize("geometry", [fac.Geometry(), fac.OBLIQUE], ids=["axial", "oblique"])
def test_rt_dose_read_by_simpleitk_matches_the_dose_at_world_points(tmp_path, geometry):
    patient = fac.make_finished_patient(tmp_path, geometry)
    assert main(["--patient-dir", str(patient.patient_dir), "--dicom", str(patient.dicom_dir),
                 "--out", str(tmp_path / "out")]) == 0
    labels = fac.label_map(geometry)
    centroids = np.array([np.argwhere(labels == v).mean(axis=0).round() for v in fac.LABELS])
    world = geometry.world_lps(centroids)  # LPS mm, from the DICOM geometry directly
    got = _sitk_dose_at(tmp_path / "out" / "rtdose.dcm", world)
    on_grid = patient.dose[tuple(centroids.astype(int).T)]
    np.testing.assert_allclose(got, on_grid, rtol=5e-3)       # the 0.5 %
    np.testing.assert_allclose(got, fac.dose_at(world), rtol=5e-3)
    # any voxel centre: agreement to half a grid-scaling step
    rng = np.random.default_rng(1)
    ijk = rng.integers(0, geometry.shape_ijk, size=(40, 3))
    step = float(pydicom.dcmread(tmp_path / "out" / "rtdose.dcm", stop_before_pixels=True).DoseGridScaling)
    got = _sitk_dose_at(tmp_path / "out" / "rtdose.dcm", geometry.world_lps(ijk))
    np.testing.assert_allclose(got, patient.dose[tuple(ijk.T)], atol=0.5 * step + 1e-6 * patient.dose.max())


@pytest.mark.parametrize("flip_k", [False, True])
def test_dose_grid_geometry_reproduces_every_voxel_position(flip_k):
    rng = np.random.default_rng(3)
    array = rng.random((5, 6, 7))
    affine = fac.OBLIQUE.ras_affine()
    if flip_k:  # k runs against row x column: frames must be reversed, offsets still increasing
        affine = affine @ np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, -1, 6], [0, 0, 0, 1]], float)
    frames, position, orientation, (dr, dc), offsets = dose_grid_lps(Image(array, affine, "Gy"), crop=False)
    r, c = orientation[:3], orientation[3:]
    n = np.cross(r, c)
    assert np.all(np.diff(offsets) > 0)
    for i, j, k in [(0, 0, 0), (4, 5, 6), (2, 3, 1)]:
        ras = affine @ [i, j, k, 1]
        lps = np.array([-ras[0], -ras[1], ras[2]])
        d = lps - position
        col, row = np.dot(d, r) / dc, np.dot(d, c) / dr
        frame = int(np.argmin(np.abs(offsets - np.dot(d, n))))
        assert np.allclose([col, row], np.round([col, row]), atol=1e-6)
        assert frames[frame, int(round(row)), int(round(col))] == array[i, j, k]


def test_segmentation_read_by_highdicom_reproduces_the_label_map(exported):
    import highdicom as hd

    patient, out = exported
    seg = hd.seg.segread(out / "seg.dcm")
    names = {int(d.SegmentNumber): d.SegmentLabel for d in seg.SegmentSequence}
    assert sorted(names.values()) == sorted(fac.LABELS.values())
    left = next(d for d in seg.SegmentSequence if d.SegmentLabel == "kidney_left")
    assert left.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence[0].CodeMeaning == "Left"
    labels = fac.label_map(patient.geometry)
    value_of = {v: k for k, v in fac.LABELS.items()}
    # slices in the order of the CT grid (k), identified by their SOP instance UID
    order = np.argsort([np.dot(np.asarray(h.ImagePositionPatient, float),
                               np.cross(patient.geometry.row_cos, patient.geometry.col_cos))
                        for h in patient.ct_headers])
    uids = [patient.ct_headers[n].SOPInstanceUID for n in order]
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=True,
                                               skip_overlap_checks=True)
    got = np.vectorize(lambda s: value_of[names[s]] if s else 0)(np.asarray(pixels))
    np.testing.assert_array_equal(got, np.transpose(labels, (2, 1, 0)))


def test_report_pdf_is_encapsulated_byte_for_byte(exported):
    _, out = exported
    ds = pydicom.dcmread(out / "report.dcm")
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert bytes(ds.EncapsulatedDocument)[: int(ds.EncapsulatedDocumentLength)] == fac.MINIMAL_PDF


def test_without_a_report_pdf_the_pdf_object_is_skipped_and_said_so(tmp_path, capsys):
    patient = fac.make_finished_patient(tmp_path, pdf=False)
    assert main(["--patient-dir", str(patient.patient_dir), "--dicom", str(patient.dicom_dir),
                 "--out", str(tmp_path / "out")]) == 0
    assert "skipped report.dcm: report/report.pdf does not exist" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["export.json", "rtdose.dcm", "seg.dcm"]


def test_exporting_the_same_result_twice_gives_the_same_instances(exported, tmp_path):
    patient, out = exported
    assert main(["--patient-dir", str(patient.patient_dir), "--dicom", str(patient.dicom_dir),
                 "--out", str(tmp_path / "again")]) == 0
    for name in ("rtdose.dcm", "seg.dcm", "report.dcm"):
        a, b = pydicom.dcmread(out / name), pydicom.dcmread(tmp_path / "again" / name)
        assert (a.SOPInstanceUID, a.SeriesInstanceUID) == (b.SOPInstanceUID, b.SeriesInstanceUID)


def test_missing_reference_ct_is_one_line_naming_the_folder(tmp_path, capsys):
    patient = fac.make_finished_patient(tmp_path)
    for path in (patient.dicom_dir / "ct_ref").iterdir():
        path.unlink()
    code = main(["--patient-dir", str(patient.patient_dir), "--dicom", str(patient.dicom_dir),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"spectdose export-dicom: error: {patient.dicom_dir}: the reference CT")
    assert not (tmp_path / "out").exists()


def test_unfinished_patient_names_the_missing_file(tmp_path, capsys):
    patient = fac.make_finished_patient(tmp_path)
    (patient.patient_dir / "dose" / "dose_ct.nii.gz").unlink()
    code = main(["--patient-dir", str(patient.patient_dir), "--dicom", str(patient.dicom_dir),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "dose_ct.nii.gz: the dose on the CT grid is missing" in err
    assert not (tmp_path / "out").exists()


def test_a_ct_on_another_grid_is_refused(tmp_path, capsys):
    patient = fac.make_finished_patient(tmp_path)
    for path in sorted((patient.dicom_dir / "ct_ref").iterdir()):
        ds = pydicom.dcmread(path)
        ds.ImagePositionPatient = [float(v) + (2.0 if i == 0 else 0.0) for i, v in enumerate(ds.ImagePositionPatient)]
        ds.save_as(path)
    code = main(["--patient-dir", str(patient.patient_dir), "--dicom", str(patient.dicom_dir),
                 "--out", str(tmp_path / "out")])
    assert code == 2 and "does not have the grid of dose/dose_ct.nii.gz" in capsys.readouterr().err
