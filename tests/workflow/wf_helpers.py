"""Helpers of the workflow tests: run snakemake's CLI on the repository's Snakefile in a folder."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "Snakefile"
CONFIG = REPO / "config" / "config.yaml"

#: The modules the end-to-end runs need: every stage, the report and the sample-data generator.
STAGE_MODULES = (
    "sample_data.cli",
    "pipeline.ingest.cli",
    "pipeline.register.cli",
    "pipeline.segment.cli",
    "pipeline.kinetics.cli",
    "pipeline.dose.cli",
    "pipeline.report.cli",
)

SHEET_COLUMNS = ("patient_id", "input", "radionuclide", "sex", "injected_mbq", "injection_datetime",
                 "calibration_cps_per_mbq", "reference_time_point", "masks", "vertebra_level")


def missing_stages() -> list[str]:
    """Stage modules not (yet) in the package; the end-to-end tests skip while any is missing."""
    missing = []
    for name in STAGE_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(name)
    return missing


def skip_unless_stages():
    missing = missing_stages()
    if missing:
        pytest.skip(f"stage modules not present yet: {', '.join(missing)}")


def tool_env(extra: dict | None = None) -> dict:
    """Environment with this interpreter's bin folder first on PATH (for `spectdose`)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("MPLBACKEND", "Agg")
    env.update(extra or {})
    return env


def snakemake(workdir: Path, *args, timeout_s: float = 600, env: dict | None = None,
              configfile: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m snakemake`` on the repository's Snakefile in ``workdir``."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE),
           "--directory", str(workdir), "--configfile", str(configfile or workdir / "config.yaml"),
           *map(str, args)]
    return subprocess.run(cmd, cwd=workdir, env=env or tool_env(), capture_output=True, text=True,
                          timeout=timeout_s)


def write_config(workdir: Path, sheet: str = "patients.tsv", **sections) -> Path:
    """config.yaml in ``workdir``: the repository's config with the sheet path and ``sections``."""
    config = yaml.safe_load(CONFIG.read_text())
    config["patients"] = sheet
    for key, value in sections.items():
        config[key] = value
    if "atlas" not in sections.get("segment", {}):
        # the workflow tests run the synthetic sample patient: the rules, as in the demo (config/demo.yaml)
        config.setdefault("segment", {})["atlas"] = "none"
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def write_sheet(workdir: Path, rows: list[dict], name: str = "patients.tsv") -> Path:
    lines = ["\t".join(SHEET_COLUMNS)]
    for row in rows:
        lines.append("\t".join(str(row.get(col, "")) for col in SHEET_COLUMNS))
    path = workdir / name
    path.write_text("\n".join(lines) + "\n")
    return path


def write_nifti_manifest(folder: Path, patient_id: str, time_points, reference: str | None = None) -> Path:
    """A manifest with NIfTI time points whose files exist (empty): enough for dry runs."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nifti").mkdir(exist_ok=True)
    entries = []
    for tp in time_points:
        for kind in ("ct", "spect"):
            (folder / "nifti" / f"{tp}_{kind}.nii.gz").touch()
        entries.append({"id": tp, "ct": f"nifti/{tp}_ct.nii.gz", "spect": f"nifti/{tp}_spect.nii.gz"})
    manifest = {"patient_id": patient_id, "time_points": entries}
    if reference:
        manifest["reference_time_point"] = reference
    path = folder / "manifest.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def make_two_patient_workdir(tmp_path: Path) -> Path:
    """Two manifest patients (NIfTI, empty files) and a valid config in ``tmp_path``.

    P01: t1h, t4h, t24h, no reference (its first scan is used); P02: t1h, t24h with reference
    t24h in the manifest and overrides in the sheet.
    """
    write_nifti_manifest(tmp_path / "data" / "P01", "P01", ["t1h", "t4h", "t24h"])
    write_nifti_manifest(tmp_path / "data" / "P02", "P02", ["t1h", "t24h"], reference="t24h")
    write_sheet(tmp_path, [
        {"patient_id": "P01", "input": "data/P01/manifest.yaml", "sex": "male"},
        {"patient_id": "P02", "input": "data/P02/manifest.yaml", "sex": "female",
         "radionuclide": "Lu-177", "injected_mbq": 7400, "injection_datetime": "2026-01-05T09:00:00"},
    ])
    write_config(tmp_path)
    return tmp_path
