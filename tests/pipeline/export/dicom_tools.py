"""Debian tools for the slow DICOM tests: found on PATH, else installed with apt-get when root, else skip."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def debian_tool(executable: str, package: str) -> str:
    """Path of ``executable``; installs Debian ``package`` with apt-get when running as root."""
    found = shutil.which(executable) or (os.path.isfile(f"/usr/sbin/{executable}") and f"/usr/sbin/{executable}")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(f"{executable} is not installed and cannot be installed here (needs root and apt-get; "
                    f"Debian package {package})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    done = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", package], env=env,
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=900)
        done = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", package], env=env,
                              capture_output=True, text=True, timeout=900)
    found = shutil.which(executable) or (os.path.isfile(f"/usr/sbin/{executable}") and f"/usr/sbin/{executable}")
    if not found:
        pytest.skip(f"apt-get install {package} failed: {done.stderr.strip()[-300:]}")
    return found


#: dciodvfy warnings accepted on spectdose's objects, with the reason (see README, "DICOM results").
ACCEPTED_DCIODVFY_WARNINGS = {
    # DoseSummationType holds Defined Terms; every standard term describes an external-beam or brachy
    # delivery and requires a Referenced RT Plan (or treatment record), which a radiopharmaceutical
    # therapy does not have. spectdose writes its own term RPT (the standard allows extending them).
    "Unrecognized defined term <RPT> for value 1 of attribute <Dose Summation Type>",
    # Copied unchanged from the hospital's CT: a single-component patient name (e.g. the sample
    # patient's "SAMPLE01") is the retired form; the identifiers must go back as they came.
    "Retired Person Name form",
}


def dciodvfy_problems(dciodvfy: str, path) -> tuple[list[str], list[str]]:
    """(errors, warnings not accepted) that dciodvfy reports for ``path``."""
    done = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, timeout=300)
    lines = (done.stdout + done.stderr).splitlines()
    errors = [ln for ln in lines if ln.startswith("Error") or "Assertion" in ln]
    warnings = [ln for ln in lines if ln.startswith("Warning")
                and not any(ok in ln for ok in ACCEPTED_DCIODVFY_WARNINGS)]
    return errors, warnings
