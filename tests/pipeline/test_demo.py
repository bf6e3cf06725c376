"""spectdose demo: sample patient -> workflow on 2 cores -> the organ dose table and the paths."""

from __future__ import annotations

import csv
import importlib.util
import re
from pathlib import Path

import pytest

from pipeline import demo

STAGES = ("sample_data.cli", "pipeline.ingest.cli", "pipeline.register.cli", "pipeline.segment.cli",
          "pipeline.kinetics.cli", "pipeline.dose.cli", "pipeline.report.cli")


def _missing_stages():
    out = []
    for name in STAGES:
        try:
            if importlib.util.find_spec(name) is None:
                out.append(name)
        except ModuleNotFoundError:
            out.append(name)
    return out


def _rows_of_printed_table(text):
    """Split the printed table back into cells (columns are separated by two or more spaces)."""
    lines = [line for line in text.splitlines() if line.strip() and not set(line) <= {"-", " "}]
    return [re.split(r" {2,}", line.strip()) for line in lines]


def test_printed_table_has_every_cell_of_the_csv(tmp_path):
    path = tmp_path / "organ_doses.csv"
    rows = [["label", "name", "mass_g", "mean_gy", "gy_per_gbq"],
            ["1", "kidney_left", "151.234", "3.41234", "0.461127"],
            ["5", "marrow_L2L4", "28.1", "0.0412", ""],
            ["100", "lesion_100", "12", "12.5", "1.69"]]
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    printed = demo.format_table(path)
    parsed = _rows_of_printed_table(printed)
    # Empty trailing cells vanish when splitting on spaces; compare the non-empty cells.
    assert parsed == [[c for c in row if c] for row in rows]


def test_snakemake_command_uses_the_repository_workflow_on_the_given_cores(tmp_path):
    cmd = demo.snakemake_command(tmp_path, tmp_path / "sheet.tsv", "results/X/report/report.html", 2)
    assert cmd[1:3] == ["-m", "snakemake"]
    assert cmd[cmd.index("--snakefile") + 1] == str(demo.REPO / "Snakefile")
    assert cmd[cmd.index("--cores") + 1] == "2"
    assert cmd[cmd.index("--profile") + 1] == str(demo.REPO / "profiles" / "local")
    assert f"patients={(tmp_path / 'sheet.tsv').resolve()}" in cmd
    assert cmd[-1] == "results/X/report/report.html"


def test_demo_outside_a_clone_is_one_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "REPO", tmp_path)
    assert demo.main(["--out", str(tmp_path / "gen")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("spectdose demo: error: ")
    assert "Snakefile" in err[0]
    assert not (tmp_path / "gen").exists()  # nothing generated


@pytest.mark.slow
def test_demo_on_the_small_patient_prints_the_dose_csv_and_existing_paths(tmp_path, capsys):
    missing = _missing_stages()
    if missing:
        pytest.skip(f"stage modules not present yet: {', '.join(missing)}")
    assert demo.main(["--cores", "2", "--out", str(tmp_path), "--preset", "small"]) == 0
    out = capsys.readouterr().out
    table = tmp_path / "results" / "SAMPLE01" / "dose" / "organ_doses.csv"
    with open(table, newline="") as handle:
        rows = [[c for c in row if c] for row in csv.reader(handle)]
    start = out.index("Organ doses of SAMPLE01")
    block = out[start:].split("\n\n")[1]
    assert _rows_of_printed_table(block) == rows
    listing = out[start:]  # the paths are printed after the table
    for key in ("dose.nii.gz", "dvh.png", "report.html"):
        printed = [line.strip() for line in listing.splitlines() if line.strip().endswith(key)]
        assert printed, key
        assert all(Path(p).is_file() for p in printed), printed
