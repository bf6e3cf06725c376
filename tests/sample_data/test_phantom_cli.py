"""``spectdose phantom``: options, output, one-line errors."""

from __future__ import annotations

import json

import yaml

from sample_data.cli import main


def test_phantom_cli_writes_nifti_with_sidecars_and_options(tmp_path):
    out = tmp_path / "p"
    code = main(["--preset", "small", "--nuclide", "Cu-67", "--seed", "5", "--out", str(out), "--noise-free",
                 "--format", "nifti", "--time-points-h", "2", "20", "--injected-mbq", "200",
                 "--patient-id", "PT007"])
    assert code == 0
    doc = yaml.safe_load((out / "manifest.yaml").read_text())
    assert doc["patient_id"] == "PT007" and doc["radionuclide"] == "Cu-67"
    assert doc["injected_activity_mbq"] == 200.0
    assert [tp["id"] for tp in doc["time_points"]] == ["t2h", "t20h"]
    for tp in doc["time_points"]:
        for key, unit in (("ct", "HU"), ("spect", "Bq/mL")):
            side = json.loads((out / tp[key]).with_name(tp["id"] + f"_{key}.json").read_text())
            assert side["unit"] == unit and side["time_point"] == tp["id"]
            assert side["radionuclide"] == "Cu-67" and side["injected_activity_mbq"] == 200.0
            assert "acquisition_datetime" in side and side["time_h"] in (2.0, 20.0)
    truth = json.loads((out / "truth" / "truth.json").read_text())
    assert truth["half_life_h"] == __import__("pytest").approx(61.83, rel=2e-3)  # physics notes: Cu-67 61.83 h
    assert (out / "montage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_phantom_cli_bad_nuclide_is_one_line_and_exit_2(tmp_path, capsys):
    code = main(["--nuclide", "Xx-999", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Xx-999" in err[0]
    assert not (tmp_path / "x").exists()


def test_phantom_cli_refuses_to_replace_a_foreign_folder(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    code = main(["--out", str(tmp_path)])
    assert code == 2 and (tmp_path / "keep.txt").read_text() == "mine"
