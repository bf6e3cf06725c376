"""The uncertainty rule in a dry run: inputs from the dose, kinetics, segment and register stages,
the spectdose command with the config file, and the config section validated by the schema."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))

from dryrun import parse_jobs  # noqa: E402
from wf_helpers import make_two_patient_workdir, snakemake, write_config  # noqa: E402


def test_dry_run_of_the_uncertainty_target(tmp_path):
    wd = make_two_patient_workdir(tmp_path)
    res = snakemake(wd, "--dry-run", "--printshellcmds", "results/P02/uncertainty/uncertainty.json", timeout_s=120)
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = parse_jobs(res.stdout + res.stderr)
    unc = [j for j in jobs if j.rule == "uncertainty"]
    assert len(unc) == 1 and unc[0].wildcards == {"patient": "P02"}
    assert "results/P02/dose/planning.json" in unc[0].inputs
    assert "results/P02/register/t1h/qc.json" in unc[0].inputs
    assert "spectdose uncertainty --patient-dir results/P02 --out results/P02/uncertainty --config" in unc[0].shell
    assert {j.rule for j in jobs} >= {"ingest", "register", "segment", "kinetics", "dose", "uncertainty"}


def test_a_wrong_uncertainty_value_stops_the_dry_run(tmp_path):
    wd = make_two_patient_workdir(tmp_path)
    section = yaml.safe_load((Path(__file__).resolve().parents[3] / "config" / "config.yaml").read_text())["uncertainty"]
    write_config(wd, uncertainty={**section, "confidence": 1.5})
    res = snakemake(wd, "--dry-run", "results/P02/uncertainty/uncertainty.json", timeout_s=120)
    assert res.returncode != 0
    assert "confidence" in res.stdout + res.stderr


@pytest.mark.parametrize("key", ["calibration_relative_sd", "mc_draws", "confidence"])
def test_config_defaults_match_the_code(key):
    from pipeline.uncertainty.sources import UncertaintySettings

    section = yaml.safe_load((Path(__file__).resolve().parents[3] / "config" / "config.yaml").read_text())["uncertainty"]
    assert section[key] == getattr(UncertaintySettings(), key)
