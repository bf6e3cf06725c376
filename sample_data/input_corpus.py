"""Bad-input corpus: variants of the small sample patient that hospitals really produce.

Each :class:`Case` builds one variant from a generated small sample patient
(DICOM, ``sample_data.generate(preset="small")``) and, for the NIfTI cases, from
that patient's ingest output (NIfTI + sidecars, the same layout a user's NIfTI
export has). A case says what the pipeline must do with it:

- ``"fail"``: exit code 2 at ``stage`` with one line naming ``names`` (a file or
  option) and a problem containing ``problem``, nothing left in the stage's output;
- ``"run"``: exit 0 and the same ingest result as the unmodified patient
  (hence the same doses: every later stage is a deterministic function of it).

The builders only copy and edit files (pydicom, nibabel); a case takes well
under a second to build. :func:`build_case` returns the command-line arguments
of the ingest. Used by ``tests/pipeline/test_bad_input_corpus.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Case", "CASES", "build_case", "nifti_base"]


@dataclass(frozen=True)
class Case:
    """One corpus case.

    Attributes
    ----------
    name : str
    category : str
        ``dicom``, ``nifti``, ``timing``, ``geometry``, ``config`` or ``cli``.
    expect : {"fail", "run"}
    problem : str
        Text the error line must contain (``"fail"``).
    names : str
        Text naming the file or option in the error line (relative path inside the case folder, or an option).
    description : str
    """

    name: str
    category: str
    expect: str
    problem: str = ""
    names: str = ""
    description: str = ""
    nifti: bool = False
    build: object = field(default=None, repr=False, compare=False)


# ----------------------------------------------------------------------------- editing helpers
def _nm(root: Path, tp: str) -> Path:
    return root / "dicom" / tp / "spect" / "NM_0001.dcm"


def _edit(path: Path, func) -> None:
    import pydicom

    ds = pydicom.dcmread(path)
    func(ds)
    ds.save_as(path)


def _set_pixels(ds, stored: np.ndarray) -> None:
    ds.PixelData = np.ascontiguousarray(stored).tobytes()


def _shift_dates(ds, days: int) -> None:
    """Shift every DA / DT of ``ds`` (not the injection record) by ``days``."""
    delta = dt.timedelta(days=days)
    for elem in ds:
        if elem.keyword == "RadiopharmaceuticalInformationSequence":
            continue
        if elem.VR == "SQ":
            for item in elem.value:
                _shift_dates(item, days)
        elif elem.VR == "DA" and elem.value:
            elem.value = (dt.datetime.strptime(str(elem.value), "%Y%m%d") + delta).strftime("%Y%m%d")
        elif elem.VR == "DT" and elem.value:
            text = str(elem.value)
            elem.value = (dt.datetime.strptime(text[:8], "%Y%m%d") + delta).strftime("%Y%m%d") + text[8:]


def _session_files(root: Path, tp: str) -> list:
    return sorted((root / "dicom" / tp).rglob("*.dcm"))


def _manifest(root: Path) -> dict:
    import yaml

    return yaml.safe_load((root / "manifest.yaml").read_text(encoding="utf-8"))


def _write_manifest(root: Path, data: dict, name: str = "manifest.yaml") -> Path:
    import yaml

    path = root / name
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def _scale_rwvm(ds, factor: float) -> None:
    ds.RescaleSlope = f"{float(ds.RescaleSlope) * factor:.8g}"
    for item in ds.get("RealWorldValueMappingSequence") or []:
        item.RealWorldValueSlope = float(item.RealWorldValueSlope) * factor


def _edit_nifti(path: Path, func, affine_func=None) -> None:
    import nibabel as nib

    img = nib.load(str(path))
    data = np.asarray(img.dataobj, np.float32)
    data = func(data)
    affine = img.affine if affine_func is None else affine_func(img.affine.copy())
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), str(path))


def _edit_sidecar(path: Path, **changes) -> None:
    side = path.with_name(path.name[:-7] + ".json")
    data = json.loads(side.read_text(encoding="utf-8"))
    for k, v in changes.items():
        if v is None:
            data.pop(k, None)
        else:
            data[k] = v
    side.write_text(json.dumps(data, indent=2), encoding="utf-8")


# ----------------------------------------------------------------------------- NIfTI base
def nifti_base(ingest_dir: Path, dst: Path) -> Path:
    """A NIfTI patient from an ingest output: ``dst/nifti/<tp>_{ct,spect}.nii.gz`` + sidecars + manifest."""
    ingest_dir, dst = Path(ingest_dir), Path(dst)
    manifest = json.loads((ingest_dir / "manifest.json").read_text(encoding="utf-8"))
    (dst / "nifti").mkdir(parents=True, exist_ok=True)
    tps = []
    for entry in manifest["time_points"]:
        tp = entry["time_point"]
        for kind in ("ct", "spect"):
            shutil.copy(ingest_dir / tp / f"{kind}.nii.gz", dst / "nifti" / f"{tp}_{kind}.nii.gz")
            shutil.copy(ingest_dir / tp / f"{kind}.json", dst / "nifti" / f"{tp}_{kind}.json")
        tps.append({"id": tp, "ct": f"nifti/{tp}_ct.nii.gz", "spect": f"nifti/{tp}_spect.nii.gz"})
    return _write_manifest(dst, {"patient_id": manifest["patient_id"], "radionuclide": manifest["radionuclide"],
                                 "injected_activity_mbq": manifest["injected_activity_mbq"],
                                 "injection_datetime": manifest["injection_datetime"],
                                 "reference_time_point": manifest.get("reference_time_point"),
                                 "time_points": tps})


# ----------------------------------------------------------------------------- the cases
# Each builder gets the case folder (a copy of the DICOM or NIfTI base) and returns
# (ingest input path, extra ingest arguments, patient id).
def _default(root):
    return root / "manifest.yaml", [], "SAMPLE01"


def _huge_values(root):
    _edit(_nm(root, "t4h"), lambda ds: _scale_rwvm(ds, 1000.0))
    return _default(root)


def _year_later(root):
    for f in _session_files(root, "t168h"):
        _edit(f, lambda ds: _shift_dates(ds, 365))
    return _default(root)


def _y90_manifest(root):
    m = _manifest(root)
    m["radionuclide"] = "Y-90"
    _write_manifest(root, m)
    return _default(root)


def _y90_cli(root):
    path, _, pid = _default(root)
    m = _manifest(root)
    del m["radionuclide"]
    _write_manifest(root, m)
    return path, ["--nuclide", "Cu-67"], pid


def _half_life_tag(root):
    def edit(ds):
        ds.RadiopharmaceuticalInformationSequence[0].RadionuclideHalfLife = "230760"  # Y-90's 64.1 h
    _edit(_nm(root, "t24h"), edit)
    return _default(root)


def _rescale0(root):
    def edit(ds):
        ds.RescaleSlope = "0"
        for item in ds.RealWorldValueMappingSequence:
            item.RealWorldValueSlope = 0.0
    _edit(_nm(root, "t24h"), edit)
    return _default(root)


def _rescale0_no_rwvm(root):
    def edit(ds):
        ds.RescaleSlope = "0"
        del ds.RealWorldValueMappingSequence
    _edit(_nm(root, "t24h"), edit)
    return _default(root)


def _slope_nan(root):
    def edit(ds):
        del ds.RealWorldValueMappingSequence
        ds.RescaleSlope = "NaN"
    _edit(_nm(root, "t4h"), edit)
    return _default(root)


def _rwvm_slope_inf(root):
    def edit(ds):
        ds.RealWorldValueMappingSequence[0].RealWorldValueSlope = float("inf")
    _edit(_nm(root, "t4h"), edit)
    return _default(root)


def _ct_rescale0(root):
    f = sorted((root / "dicom" / "t48h" / "ct").glob("*.dcm"))[10]
    _edit(f, lambda ds: setattr(ds, "RescaleSlope", "0"))
    return _default(root)


def _spacing_lie(root):
    _edit(_nm(root, "t48h"), lambda ds: setattr(ds, "SpacingBetweenSlices", "6.0"))
    return _default(root)


def _one_slice(root):
    def edit(ds):
        arr = ds.pixel_array
        ds.NumberOfFrames = 1
        ds.NumberOfSlices = 1
        ds.SliceVector = [1]
        _set_pixels(ds, arr[45])
    _edit(_nm(root, "t4h"), edit)
    return _default(root)


def _blank(root):
    _edit(_nm(root, "t4h"), lambda ds: _set_pixels(ds, np.zeros_like(ds.pixel_array)))
    return _default(root)


def _injected_gbq_as_mbq(root):
    m = _manifest(root)
    m["injected_activity_mbq"] = 7.4
    _write_manifest(root, m)
    return _default(root)


def _injection_after_scan(root):
    m = _manifest(root)
    m["injection_datetime"] = "2026-01-05T11:00:00"
    _write_manifest(root, m)
    return _default(root)


def _same_folder_twice(root):
    m = _manifest(root)
    m["time_points"].append({"id": "t200h", "dicom": "dicom/t168h"})
    _write_manifest(root, m)
    return _default(root)


def _missing_folder(root):
    shutil.rmtree(root / "dicom" / "t48h")
    return _default(root)


def _dicom_file_as_manifest(root):
    return _nm(root, "t1h"), [], "SAMPLE01"


def _manifest_binary(root):
    (root / "manifest.yaml").write_bytes(bytes(range(256)) * 4)
    return _default(root)


def _manifest_bad_yaml(root):
    (root / "manifest.yaml").write_text("time_points: [ {id: t1h, dicom: \n", encoding="utf-8")
    return _default(root)


def _manifest_folder_for_nifti(root):
    m = _manifest(root)
    m["time_points"][0] = {"id": "t1h", "ct": "dicom/t1h/ct", "spect": "dicom/t1h/spect"}
    _write_manifest(root, m)
    return _default(root)


def _pid(pid):
    def build(root):
        path, args, _ = _default(root)
        return path, args, pid
    return build


def _out_is_file(root):
    path, args, pid = _default(root)
    return path, ["--out-is-file"], pid  # the test turns this into an existing file as --out


def _wrong_ct_of_another_region(root):
    """The CT of t4h moved 1 m along the table: the SPECT is not inside its CT."""
    for f in (root / "dicom" / "t4h" / "ct").glob("*.dcm"):
        def edit(ds):
            ipp = [float(v) for v in ds.ImagePositionPatient]
            ds.ImagePositionPatient = [f"{ipp[0]:.4f}", f"{ipp[1]:.4f}", f"{ipp[2] + 1000.0:.4f}"]
        _edit(f, edit)
    return _default(root)


# NIfTI cases (root is a copy of the NIfTI base)
def _nifti_negative(root):
    def f(a):
        a = a.copy()
        a[:, :, : a.shape[2] // 2] *= -1.0  # lower half negated
        return a
    _edit_nifti(root / "nifti" / "t24h_spect.nii.gz", f)
    return _default(root)


def _nifti_offset(root):
    _edit_nifti(root / "nifti" / "t24h_spect.nii.gz", lambda a: a - 0.3 * a.max())
    return _default(root)


def _nifti_nan(root):
    def f(a):
        a = a.copy()
        a[10:20, 10:20, 10:20] = np.nan
        return a
    _edit_nifti(root / "nifti" / "t4h_spect.nii.gz", f)
    return _default(root)


def _nifti_kbq(root):
    _edit_nifti(root / "nifti" / "t48h_spect.nii.gz", lambda a: a * 1000.0)
    return _default(root)


def _nifti_one_slice(root):
    _edit_nifti(root / "nifti" / "t4h_spect.nii.gz", lambda a: a[:, :, 40:41])
    return _default(root)


def _nifti_shifted(root):
    def aff(a):
        a[2, 3] += 400.0
        return a
    _edit_nifti(root / "nifti" / "t24h_spect.nii.gz", lambda a: a, aff)
    return _default(root)


def _nifti_year_later(root):
    _edit_sidecar(root / "nifti" / "t168h_spect.nii.gz", acquisition_datetime="2027-01-12T09:00:00")
    return _default(root)


def _nifti_same_time(root):
    _edit_sidecar(root / "nifti" / "t48h_spect.nii.gz", acquisition_datetime="2026-01-06T09:00:20")
    return _default(root)


def _nifti_no_time(root):
    _edit_sidecar(root / "nifti" / "t4h_spect.nii.gz", acquisition_datetime=None)
    return _default(root)


def _nifti_counts(root):
    _edit_sidecar(root / "nifti" / "t4h_spect.nii.gz", unit="counts")
    return _default(root)


def _nifti_before_injection(root):
    _edit_sidecar(root / "nifti" / "t1h_spect.nii.gz", acquisition_datetime="2026-01-05T08:00:00")
    return _default(root)


def _nifti_missing_file(root):
    (root / "nifti" / "t48h_ct.nii.gz").unlink()
    return _default(root)


def _nifti_truncated(root):
    p = root / "nifti" / "t24h_spect.nii.gz"
    p.write_bytes(p.read_bytes()[:4000])
    return _default(root)


def _nifti_sidecar_not_json(root):
    (root / "nifti" / "t4h_spect.json").write_text("{ unit: Bq/mL", encoding="utf-8")
    return _default(root)


def _nifti_2d(root):
    _edit_nifti(root / "nifti" / "t4h_spect.nii.gz", lambda a: a[:, :, 45])
    return _default(root)


def _nifti_huge_mixed_nuclide(root):
    m = _manifest(root)
    m["radionuclide"] = "Xx-999"
    _write_manifest(root, m)
    return _default(root)


# cases that must still run (same ingest result as the unmodified patient)
def _junk_files(root):
    (root / "dicom" / "t4h" / "notes.txt").write_text("protocol notes\n", encoding="utf-8")
    (root / "dicom" / "t4h" / "spect" / "thumb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(300))
    (root / "dicom" / "t24h" / "ct" / ".DS_Store").write_bytes(bytes(64))
    (root / "dicom" / "t24h" / "DICOMDIR.txt").write_text("x", encoding="utf-8")
    return _default(root)


def _unicode_names(root):
    new = root / "dicom" / "t4h_Überprüfung_扫描 (2)"
    (root / "dicom" / "t4h").rename(new)
    spect = new / "spect" / "NM_0001.dcm"
    spect.rename(new / "spect" / "SPECT ünïcødé.dcm")
    m = _manifest(root)
    m["time_points"][1]["dicom"] = f"dicom/{new.name}"
    _write_manifest(root, m)
    return _default(root)


def _time_only_injection(root):
    for tp in ("t1h", "t4h", "t24h", "t48h", "t168h"):
        def edit(ds):
            del ds.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartDateTime
        _edit(_nm(root, tp), edit)
    m = _manifest(root)
    del m["injection_datetime"]
    _write_manifest(root, m)
    return root / "manifest.yaml", ["--injection-datetime", "2026-01-05T09:00:00"], "SAMPLE01"


def _mbq_as_bq(root):
    for tp in ("t1h", "t4h", "t24h", "t48h", "t168h"):
        def edit(ds):
            ds.RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose = "7400"
        _edit(_nm(root, tp), edit)
    m = _manifest(root)
    del m["injected_activity_mbq"]
    _write_manifest(root, m)
    return root / "manifest.yaml", ["--injected-mbq", "7400"], "SAMPLE01"


def _unknown_manifest_key(root):
    m = _manifest(root)
    m["hospital_note"] = "re-scan requested"
    _write_manifest(root, m)
    return _default(root)


def _nifti_plain(root):
    return _default(root)


def _nifti_tiny_negative_ringing(root):
    def f(a):
        a = a.copy()
        a[a == 0] = -5e-6 * a.max()  # resampling ringing: a hair below zero around the body
        return a
    _edit_nifti(root / "nifti" / "t24h_spect.nii.gz", f)
    return _default(root)


def _force_nuclide_same(root):
    path, _, pid = _default(root)
    return path, ["--nuclide", "Lu-177", "--force-nuclide"], pid


CASES = [
    # the seven silent wrong doses of issue 21
    Case("huge_values", "dicom", "fail", "activity_in_fov_over_injected", "dicom/t4h/spect/NM_0001.dcm",
         "SPECT values x1000 at t4h", build=_huge_values),
    Case("year_later", "timing", "fail", "time_after_injection_in_half_lives", "dicom/t168h/spect/NM_0001.dcm",
         "last session dated a year later", build=_year_later),
    Case("y90_manifest_vs_lu177_dicom", "dicom", "fail", "DICOM says Lu-177", "dicom/t1h/spect/NM_0001.dcm",
         "manifest radionuclide Y-90, DICOM Lu-177", build=_y90_manifest),
    Case("rescale0", "dicom", "fail", "Slope is 0", "dicom/t24h/spect/NM_0001.dcm",
         "RescaleSlope and RealWorldValueSlope 0 at t24h", build=_rescale0),
    Case("spacing_lie", "geometry", "fail", "spect_axial_range_inside_ct", "dicom/t48h/spect/NM_0001.dcm",
         "SpacingBetweenSlices 6.0 mm on a 4.8 mm grid", build=_spacing_lie),
    Case("one_slice_spect", "geometry", "fail", "axial_extent", "dicom/t4h/spect/NM_0001.dcm",
         "one-frame tomogram at t4h", build=_one_slice),
    Case("nifti_negative", "nifti", "fail", "negative_activity_share", "nifti/t24h_spect.nii.gz",
         "lower half of the t24h SPECT negated", nifti=True, build=_nifti_negative),
    # DICOM
    Case("cli_nuclide_vs_dicom", "dicom", "fail", "DICOM says Lu-177", "dicom/t1h/spect/NM_0001.dcm",
         "--nuclide Cu-67 against Lu-177 DICOM", build=_y90_cli),
    Case("half_life_tag_of_y90", "dicom", "fail", "RadionuclideHalfLife", "dicom/t24h/spect/NM_0001.dcm",
         "RadionuclideHalfLife of Y-90 in a Lu-177 series", build=_half_life_tag),
    Case("rescale0_without_rwvm", "dicom", "fail", "RescaleSlope is 0", "dicom/t24h/spect/NM_0001.dcm",
         "RescaleSlope 0, no Real World Value Mapping", build=_rescale0_no_rwvm),
    Case("rescale_nan", "dicom", "fail", "RescaleSlope is nan", "dicom/t4h/spect/NM_0001.dcm",
         "RescaleSlope NaN", build=_slope_nan),
    Case("rwvm_slope_inf", "dicom", "fail", "RealWorldValueSlope is inf", "dicom/t4h/spect/NM_0001.dcm",
         "RealWorldValueSlope inf", build=_rwvm_slope_inf),
    Case("ct_rescale0", "dicom", "fail", "RescaleSlope is 0", "dicom/t48h/ct/", "one CT slice with slope 0",
         build=_ct_rescale0),
    Case("blank_spect", "dicom", "fail", "activity_in_fov_positive", "dicom/t4h/spect/NM_0001.dcm",
         "all SPECT pixels zero", build=_blank),
    Case("dicom_file_as_manifest", "cli", "fail", "not a manifest", "dicom/t1h/spect/NM_0001.dcm",
         "a DICOM file given where the manifest is expected", build=_dicom_file_as_manifest),
    Case("same_folder_twice", "config", "fail", "same SPECT series", "dicom/t168h/spect/NM_0001.dcm",
         "one DICOM folder listed for two time points", build=_same_folder_twice),
    Case("missing_session_folder", "config", "fail", "", "dicom/t48h", "a manifest folder that is gone",
         build=_missing_folder),
    # timing / activity
    Case("injected_gbq_typed_as_mbq", "config", "fail", "activity_in_fov_over_injected",
         "dicom/t1h/spect/NM_0001.dcm", "injected_activity_mbq: 7.4 (GBq written in the MBq field)",
         build=_injected_gbq_as_mbq),
    Case("injection_after_first_scan", "timing", "fail", "after acquisition", "dicom/t1h/spect/NM_0001.dcm",
         "injection time after the 1 h scan", build=_injection_after_scan),
    # geometry
    Case("ct_of_another_region", "geometry", "fail", "spect_axial_range_inside_ct",
         "dicom/t4h/spect/NM_0001.dcm", "the t4h CT 1 m along the table", build=_wrong_ct_of_another_region),
    # config / manifest
    Case("manifest_binary", "config", "fail", "not UTF-8", "manifest.yaml", "manifest of random bytes",
         build=_manifest_binary),
    Case("manifest_bad_yaml", "config", "fail", "not valid YAML", "manifest.yaml", "unterminated YAML",
         build=_manifest_bad_yaml),
    Case("manifest_folder_for_nifti", "config", "fail", "is a folder", "dicom/t1h/ct",
         "folders given as NIfTI files", build=_manifest_folder_for_nifti),
    # command line
    Case("patient_id_dotdot", "cli", "fail", "not a valid patient id", "--patient-id", "--patient-id ../x",
         build=_pid("../x")),
    Case("patient_id_slash", "cli", "fail", "not a valid patient id", "--patient-id", "--patient-id a/b",
         build=_pid("a/b")),
    Case("patient_id_space", "cli", "fail", "not a valid patient id", "--patient-id", "--patient-id 'P 01'",
         build=_pid("P 01")),
    Case("patient_id_dot", "cli", "fail", "not a valid patient id", "--patient-id", "--patient-id .",
         build=_pid(".")),
    Case("out_is_a_file", "cli", "fail", "is a file", "out", "--out names an existing file",
         build=_out_is_file),
    # NIfTI
    Case("nifti_offset", "nifti", "fail", "negative_activity_share", "nifti/t24h_spect.nii.gz",
         "30 % of the maximum subtracted everywhere", nifti=True, build=_nifti_offset),
    Case("nifti_nan", "nifti", "fail", "non_finite_voxels", "nifti/t4h_spect.nii.gz", "NaN block",
         nifti=True, build=_nifti_nan),
    Case("nifti_kbq_as_bq", "nifti", "fail", "activity_in_fov_over_injected", "nifti/t48h_spect.nii.gz",
         "values x1000 (kBq/mL read as Bq/mL the wrong way round)", nifti=True, build=_nifti_kbq),
    Case("nifti_one_slice", "nifti", "fail", "axial_extent", "nifti/t4h_spect.nii.gz", "one slice kept",
         nifti=True, build=_nifti_one_slice),
    Case("nifti_shifted_400mm", "nifti", "fail", "spect_axial_range_inside_ct", "nifti/t24h_spect.nii.gz",
         "SPECT affine 400 mm off its CT", nifti=True, build=_nifti_shifted),
    Case("nifti_year_later", "timing", "fail", "time_after_injection_in_half_lives", "nifti/t168h_spect.nii.gz",
         "sidecar date a year later", nifti=True, build=_nifti_year_later),
    Case("nifti_same_time", "timing", "fail", "separation_from_previous_scan", "nifti/t48h_spect.nii.gz",
         "t48h sidecar time 20 s after t24h", nifti=True, build=_nifti_same_time),
    Case("nifti_no_time", "timing", "fail", "no acquisition_datetime", "nifti/t4h_spect.nii.gz",
         "sidecar without acquisition_datetime", nifti=True, build=_nifti_no_time),
    Case("nifti_before_injection", "timing", "fail", "after acquisition", "nifti/t1h_spect.nii.gz",
         "scan an hour before the injection", nifti=True, build=_nifti_before_injection),
    Case("nifti_counts", "nifti", "fail", "Bq/mL", "nifti/t4h_spect.nii.gz", "sidecar unit counts",
         nifti=True, build=_nifti_counts),
    Case("nifti_missing_ct", "nifti", "fail", "not found", "nifti/t48h_ct.nii.gz", "CT file missing",
         nifti=True, build=_nifti_missing_file),
    Case("nifti_truncated", "nifti", "fail", "NIfTI", "nifti/t24h_spect.nii.gz", "file cut at 4 kB",
         nifti=True, build=_nifti_truncated),
    Case("nifti_sidecar_not_json", "nifti", "fail", "not valid JSON", "nifti/t4h_spect.json",
         "broken sidecar", nifti=True, build=_nifti_sidecar_not_json),
    Case("nifti_2d", "nifti", "fail", "", "nifti/t4h_spect.nii.gz", "a 2-D image", nifti=True, build=_nifti_2d),
    Case("nifti_unknown_nuclide", "config", "fail", "unknown radionuclide", "manifest.yaml",
         "radionuclide Xx-999", nifti=True, build=_nifti_huge_mixed_nuclide),
    # must still run, with the correct result
    Case("junk_beside_dicom", "dicom", "run", description="txt, png, .DS_Store beside the DICOM",
         build=_junk_files),
    Case("unicode_names", "dicom", "run", description="unicode and spaces in folder and file names",
         build=_unicode_names),
    Case("time_only_injection", "timing", "run", description="DICOM has the injection time of day only; "
         "--injection-datetime given", build=_time_only_injection),
    Case("mbq_written_as_bq", "dicom", "run", description="RadionuclideTotalDose 7400 (MBq in a Bq field); "
         "--injected-mbq 7400 given", build=_mbq_as_bq),
    Case("unknown_manifest_key", "config", "run", description="an extra top-level manifest key",
         build=_unknown_manifest_key),
    Case("force_nuclide_agreeing", "cli", "run", description="--nuclide Lu-177 --force-nuclide",
         build=_force_nuclide_same),
    Case("nifti_export", "nifti", "run", description="the same patient as NIfTI + sidecars", nifti=True,
         build=_nifti_plain),
    Case("nifti_ringing", "nifti", "run", description="background a hair below zero (resampling ringing)",
         nifti=True, build=_nifti_tiny_negative_ringing),
]


def build_case(case: Case, dicom_base: Path, nifti_base_dir: Path, dst: Path):
    """Copy the base of ``case`` to ``dst`` and apply the case.

    Returns
    -------
    input_path : pathlib.Path
    extra_args : list of str
        Extra ``spectdose ingest`` arguments.
    patient_id : str
    """
    src = nifti_base_dir if case.nifti else dicom_base
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("truth", "montage.png"))
    return case.build(Path(dst))
