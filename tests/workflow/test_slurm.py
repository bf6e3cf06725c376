"""The workflow on a real single-node Slurm cluster through snakemake-executor-plugin-slurm.

Marker ``slurm`` (`make test-slurm`; CI runs `pytest -m slurm` as its own job). Needs root and
either Debian's slurm-wlm and munge or apt-get to install them; skips with the reason otherwise.
The cluster lives in a temporary folder and its daemons are stopped by pid in the fixture's
teardown, whatever happens in the tests.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wf_helpers import REPO, missing_stages, snakemake, tool_env, write_config, write_sheet
from slurm_cluster import SlurmCluster, ensure_installed, why_unavailable

pytestmark = pytest.mark.slurm

PROFILE = REPO / "profiles" / "slurm"
#: Workarounds for a cluster without accounting (slurm.md pitfalls 1 and 3); the profile itself
#: sets the partition and the 5 s before the first status check.
SLURM_ARGS = ("--profile", PROFILE, "--slurm-status-command", "squeue", "--slurm-no-account")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = why_unavailable()
    if reason:
        pytest.skip(f"no Slurm test cluster: {reason}")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')")
    try:
        ensure_installed()
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"cannot install slurm-wlm and munge: {exc}")
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def _run_on_cluster(cluster, workdir, *args, snakefile=None, configfile=None, timeout_s=900):
    env = cluster.env(tool_env())
    if snakefile is None:
        return snakemake(workdir, *SLURM_ARGS, *args, env=env, timeout_s=timeout_s,
                         configfile=configfile)
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir),
           *map(str, SLURM_ARGS), *map(str, args)]
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout_s)


def _explain(result, cluster) -> str:
    return f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-6000:]}\n{cluster.daemon_logs()}"


def test_cluster_runs_a_snakemake_job_through_the_slurm_executor(cluster, tmp_path):
    # One rule that runs `spectdose info` as a Slurm job, with attempt-scaled memory like the
    # workflow's rules: checks the cluster, the plugin options of the profile and the srun wrapper.
    (tmp_path / "Snakefile").write_text(
        "rule info:\n"
        "    output: 'info.json'\n"
        "    log: 'info.log'\n"
        "    threads: 1\n"
        "    resources:\n"
        "        mem_mb=lambda wc, attempt: 500 * attempt,\n"
        "        runtime=5,\n"
        "    shell: 'spectdose info --json > {output} 2> {log}'\n"
    )
    start = time.monotonic()
    result = _run_on_cluster(cluster, tmp_path, "--jobs", "1", snakefile=tmp_path / "Snakefile",
                             timeout_s=300)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, _explain(result, cluster)
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["engines"]["snakemake"]  # written by spectdose inside the Slurm job
    # The job really went through Slurm: the controller logged an allocation in partition debug.
    assert "Partition=debug" in (cluster.root / "slurmctld.log").read_text()
    print(f"trivial one-job workflow on Slurm: {elapsed:.1f} s")


def _generate_sample(out: Path, patient_id: str, seed: int) -> Path:
    from sample_data.cli import main as phantom

    code = phantom(["--preset", "small", "--nuclide", "Lu-177", "--seed", str(seed), "--out", str(out),
                    "--patient-id", patient_id, "--time-points-h", "1", "24", "168"])
    assert code == 0
    return out / "manifest.yaml"


def test_workflow_for_two_small_patients_on_slurm(cluster, tmp_path):
    missing = missing_stages()
    if missing:
        pytest.skip(f"stage modules not present yet: {', '.join(missing)}")
    rows = []
    for seed, pid in ((1, "S01"), (2, "S02")):
        manifest = _generate_sample(tmp_path / "data" / pid, pid, seed)
        rows.append({"patient_id": pid, "input": str(manifest), "sex": "male" if seed == 1 else "female"})
    write_sheet(tmp_path, rows)
    small = {"threads": 1, "mem_mb": 1500, "runtime_min": 30}
    config = write_config(tmp_path, resources={stage: dict(small) for stage in
                                               ("ingest", "register", "segment", "kinetics", "dose",
                                                "report")})
    start = time.monotonic()
    result = _run_on_cluster(cluster, tmp_path, "--jobs", "4", configfile=config, timeout_s=1500)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, _explain(result, cluster)
    for pid in ("S01", "S02"):
        patient = tmp_path / "results" / pid
        for name in ("dose/dose.nii.gz", "dose/dose_ct.nii.gz", "dose/organ_doses.csv", "dose/dvh.csv",
                     "dose/marrow.json", "dose/bed.csv", "dose/planning.json", "kinetics/tia.nii.gz",
                     "segment/labels.nii.gz", "report/report.html"):
            assert (patient / name).is_file(), f"{pid}: {name} missing"
        with open(patient / "dose" / "organ_doses.csv", newline="") as handle:
            mean_gy = {row["name"]: float(row["mean_gy"]) for row in csv.DictReader(handle)}
        # The sample patient's kidneys and liver take up activity: a positive, finite mean dose.
        for organ in ("kidney_left", "kidney_right", "liver"):
            assert 0 < mean_gy[organ] < 1e3, (pid, organ, mean_gy.get(organ))
    print(f"two small patients on Slurm: {elapsed:.1f} s")
