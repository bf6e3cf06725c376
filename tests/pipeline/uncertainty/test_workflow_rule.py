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


def test_a_reduced_course_cycle_reads_the_earlier_fits(tmp_path):
    """The one-scan cycle's uncertainty job has the earlier cycle's fits.json as input and flag; the
    full-protocol cycles and single studies run as before (no flag)."""
    from wf_helpers import write_nifti_manifest, write_sheet

    full = ["t1h", "t4h", "t24h", "t48h", "t168h"]
    cycles = (("c1", 7400.0, "2026-01-19T09:00:00", full), ("c2", 6000.0, "2026-03-16T09:00:00", ["t72h"]))
    for cid, _, _, tps in cycles:
        write_nifti_manifest(tmp_path / "data" / "C01" / cid, "C01", tps)
    doc = {"patient_id": "C01", "radionuclide": "Lu-177",
           "cycles": [{"id": c, "kind": "therapy", "injected_activity_mbq": a, "injection_datetime": w,
                       "manifest": f"{c}/manifest.yaml"} for c, a, w, _ in cycles]}
    (tmp_path / "data" / "C01" / "course.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    write_sheet(tmp_path, [{"patient_id": "C01", "input": "data/C01/course.yaml", "sex": "male"}])
    write_config(tmp_path)
    res = snakemake(tmp_path, "--dry-run", "--printshellcmds", "results/C01/c1/uncertainty/uncertainty.json",
                    "results/C01/c2/uncertainty/uncertainty.json", timeout_s=300)
    assert res.returncode == 0, res.stderr[-3000:]
    unc = {j.wildcards["patient"]: j for j in parse_jobs(res.stdout + res.stderr) if j.rule == "uncertainty"}
    assert set(unc) == {"C01/c1", "C01/c2"}
    assert "results/C01/c1/kinetics/fits.json" in unc["C01/c2"].inputs
    assert "--prior-fits results/C01/c1/kinetics/fits.json" in unc["C01/c2"].shell
    assert "--prior-fits" not in unc["C01/c1"].shell
