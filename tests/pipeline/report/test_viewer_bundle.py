"""Viewer bundle: the Slicer segmentation has the labels' geometry; the ITK-SNAP workspace names the files."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np

from pipeline.report.viewer import write_viewer_bundle


def test_seg_nrrd_reads_back_with_the_geometry_and_values_of_the_label_map(patient_dir, tmp_path):
    import SimpleITK as sitk

    out, why = write_viewer_bundle(patient_dir, tmp_path / "viewer")
    assert why is None
    seg = sitk.ReadImage(str(out / "labels.seg.nrrd"))
    ref = sitk.ReadImage(str(patient_dir / "segment" / "labels.nii.gz"))  # both through ITK, both in LPS
    assert np.allclose(seg.GetOrigin(), ref.GetOrigin(), atol=1e-4)
    assert np.allclose(seg.GetDirection(), ref.GetDirection(), atol=1e-6)
    assert np.allclose(seg.GetSpacing(), ref.GetSpacing(), atol=1e-6)
    assert np.array_equal(sitk.GetArrayFromImage(seg), sitk.GetArrayFromImage(ref))
    keys = {k: seg.GetMetaData(k) for k in seg.GetMetaDataKeys()}
    names = {keys[f"Segment{i}_Name"]: int(keys[f"Segment{i}_LabelValue"])
             for i in range(10) if f"Segment{i}_Name" in keys}
    assert names == {"kidney_left": 1, "kidney_right": 2, "liver": 3, "vertebrae_L2L4": 6, "body": 7}
    assert keys["Segmentation_MasterRepresentation"] == "Binary labelmap"
    table = (out / "labels.ctbl").read_text().splitlines()
    assert "1 kidney_left 230 120 40 255" in table


def test_itksnap_workspace_has_ct_main_dose_overlay_and_labels(patient_dir, tmp_path):
    out, _ = write_viewer_bundle(patient_dir, tmp_path / "viewer")
    root = ET.parse(out / "P7.itksnap").getroot()
    assert root.find("entry[@key='SaveLocation']").get("value") == str(out.resolve())
    layers = {}
    for folder in root.find("folder[@key='Layers']"):
        entries = {e.get("key"): e.get("value") for e in folder.findall("entry")}
        layers[entries["Role"]] = entries["AbsolutePath"]
    assert layers == {"MainRole": str((patient_dir / "register" / "reference_ct.nii.gz").resolve()),
                      "OverlayRole": str((patient_dir / "dose" / "dose_ct.nii.gz").resolve()),
                      "SegmentationRole": str((patient_dir / "segment" / "labels.nii.gz").resolve())}
    preset = root.find(".//folder[@key='ColorMap']/entry[@key='Preset']")
    assert preset.get("value") == "Jet"
    labels = (out / "itksnap_labels.txt").read_text()
    assert '    1  230  120   40 1 1 1 "kidney_left"' in labels
