"""Every stage command: a folder where a file is expected (and the reverse) is one line and exit 2;
patient ids follow the patient sheet's rule."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from pipeline.cli_checks import PATIENT_ID_MAX_LENGTH, PATIENT_ID_PATTERN, check_patient_id
from pipeline.errors import InputError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def paths(tmp_path):
    d = tmp_path / "a_folder"
    d.mkdir()
    (d / "x").write_text("x")
    f = tmp_path / "a_file.txt"
    f.write_text("plain text\n")
    return d, f, tmp_path


# (module, argv builder, text that must name the wrong path) -- d: a folder, f: a file, t: tmp
CASES = {
    "ingest_out_is_file": ("pipeline.ingest.cli", lambda d, f, t: [str(d), "--patient-id", "P1", "--out", str(f)], "f"),
    "ingest_input_binary": ("pipeline.ingest.cli",
                            lambda d, f, t: [str(_binary(t)), "--patient-id", "P1", "--out", str(t / "o")], "b"),
    "register_ingest_dir_is_file": ("pipeline.register.cli", lambda d, f, t: ["--ingest-dir", str(f), "--out",
                                                                              str(t / "o")], "f"),
    "register_out_is_file": ("pipeline.register.cli", lambda d, f, t: ["--ingest-dir", str(d), "--out", str(f)], "f"),
    "kinetics_register_dir_is_file": ("pipeline.kinetics.cli", lambda d, f, t: [
        "--register-dir", str(f), "--labels", str(f), "--out", str(t / "o")], "f"),
    "kinetics_labels_is_folder": ("pipeline.kinetics.cli", lambda d, f, t: [
        "--register-dir", str(d), "--labels", str(d), "--out", str(t / "o")], "d"),
    "kinetics_out_is_file": ("pipeline.kinetics.cli", lambda d, f, t: [
        "--register-dir", str(d), "--labels", str(f), "--out", str(f)], "f"),
    "dose_kinetics_dir_is_file": ("pipeline.dose.cli", lambda d, f, t: [
        "--kinetics-dir", str(f), "--labels", str(f), "--ct", str(f), "--out", str(t / "o")], "f"),
    "dose_ct_is_folder": ("pipeline.dose.cli", lambda d, f, t: [
        "--kinetics-dir", str(d), "--labels", str(f), "--ct", str(d), "--out", str(t / "o")], "d"),
    "dose_labels_is_folder": ("pipeline.dose.cli", lambda d, f, t: [
        "--kinetics-dir", str(d), "--labels", str(d), "--ct", str(f), "--out", str(t / "o")], "d"),
    "dose_config_is_folder": ("pipeline.dose.cli", lambda d, f, t: [
        "--kinetics-dir", str(d), "--labels", str(f), "--ct", str(f), "--config", str(d), "--out", str(t / "o")],
        "d"),
    "dose_register_dir_is_file": ("pipeline.dose.cli", lambda d, f, t: [
        "--kinetics-dir", str(d), "--labels", str(f), "--ct", str(f), "--register-dir", str(f), "--out",
        str(t / "o")], "f"),
    "report_patient_dir_is_file": ("pipeline.report.cli", lambda d, f, t: [
        "--patient-dir", str(f), "--out", str(t / "r.html")], "f"),
    "report_out_is_folder": ("pipeline.report.cli", lambda d, f, t: ["--patient-dir", str(d), "--out", str(d)], "d"),
    "phantom_patient_id": ("sample_data.cli", lambda d, f, t: ["--out", str(t / "o"), "--patient-id", "../x"],
                           "--patient-id"),
}


def _binary(t: Path) -> Path:
    p = t / "scan.yaml"
    p.write_bytes(b"DICM" + bytes(range(256)))
    return p


@pytest.mark.parametrize("name", sorted(CASES))
def test_wrong_kind_of_path_is_one_line(name, paths, capsys):
    d, f, t = paths
    module, argv, named = CASES[name]
    main = importlib.import_module(module).main
    code = main(argv(d, f, t))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ": error: " in ln]
    assert len(lines) == 1 and len(err.strip().splitlines()) == 1, err
    expected = {"d": str(d), "f": str(f), "b": str(t / "scan.yaml")}.get(named, named)
    assert expected in lines[0], lines[0]
    assert not (t / "o").exists()


def test_the_cli_patient_id_rule_is_the_sheet_rule(repo_root):
    schema = yaml.safe_load((repo_root / "config" / "patients.schema.yaml").read_text())
    pid = schema["properties"]["patient_id"]
    assert pid["pattern"] == PATIENT_ID_PATTERN
    assert pid["maxLength"] == PATIENT_ID_MAX_LENGTH


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", ".", "a\\b", "P 01", "", "-P", "x" * 65, "P\n1", "é"])
def test_bad_patient_ids_are_refused(bad):
    with pytest.raises(InputError, match="not a valid patient id"):
        check_patient_id(bad)


@pytest.mark.parametrize("good", ["P001", "SAMPLE01", "a-b_c", "9", "x" * 64])
def test_good_patient_ids_pass(good):
    assert check_patient_id(good) == good


def test_demo_refuses_a_path_as_patient_id(capsys):
    from pipeline.demo import main

    assert main(["--patient-id", "../../etc"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spectdose demo: error: --patient-id: ") and len(err.splitlines()) == 1
