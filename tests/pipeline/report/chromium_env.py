"""Headless Chromium and poppler-utils for the report tests: installed with apt-get when missing.

Like the Slurm test (``tests/workflow/slurm_cluster.py``): Debian's ``chromium`` (prints the PDF,
renders the page) and ``poppler-utils`` (``pdftotext``, ``pdftoppm``) are installed with apt-get
when the test runs as root and apt-get exists; otherwise the test skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess

#: Debian package -> executables it provides.
PACKAGES = {"chromium": ("chromium",), "poppler-utils": ("pdftotext", "pdftoppm")}


def _missing() -> list:
    return [pkg for pkg, exes in PACKAGES.items() if not all(shutil.which(e) for e in exes)]


def why_unavailable() -> str | None:
    """Why Chromium and poppler-utils cannot be had here (``None`` when present or installable)."""
    missing = _missing()
    if not missing:
        return None
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return f"{', '.join(missing)} not installed and not root (apt-get needs root)"
    if shutil.which("apt-get") is None:
        return f"{', '.join(missing)} not installed and apt-get is not available"
    return None


def ensure_installed(timeout_s: float = 1200) -> None:
    """apt-get install the missing packages (raises RuntimeError with apt's output on failure)."""
    missing = _missing()
    if not missing:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *missing]):
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    still = _missing()
    if still:
        raise RuntimeError(f"apt-get installed {', '.join(missing)} but {', '.join(still)} is still missing")
