"""``spectdose info``: software versions and supported radionuclides."""

from __future__ import annotations

import argparse
import json
import platform
from importlib import metadata

from . import __version__
from .cli import run_stage

ENGINES = ("numpy", "scipy", "numba", "SimpleITK", "nibabel", "pydicom", "snakemake",
           "icrp107-database", "matplotlib", "ompmc", "snakemake-executor-plugin-slurm")


def engine_versions() -> dict:
    """Installed versions of the engines spectdose uses (``None`` when absent)."""
    versions = {}
    for dist in ENGINES:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def collect_info() -> dict:
    """Everything ``spectdose info`` reports, as a dictionary."""
    info = {
        "spectdose": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "engines": engine_versions(),
    }
    try:
        from kernels.registry import supported_nuclides
    except ImportError:
        info["radionuclides"] = []
    else:
        info["radionuclides"] = supported_nuclides()
    return info


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spectdose info", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print as JSON")
    return parser


def _run(args) -> int:
    info = collect_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"spectdose {info['spectdose']} (Python {info['python']}, {info['platform']})")
    print("engines:")
    for name, version in info["engines"].items():
        print(f"  {name:34s} {version or 'not installed'}")
    print("radionuclides with kernels:")
    for row in info["radionuclides"]:
        print(f"  {row}")
    if not info["radionuclides"]:
        print("  (none yet)")
    return 0


def main(argv=None) -> int:
    return run_stage("spectdose info", build_parser(), _run, argv)
