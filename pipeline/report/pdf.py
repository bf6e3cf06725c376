"""``report.pdf`` from ``report.html`` with headless Chromium (Debian package ``chromium``).

Chromium prints the page with its print style sheet: A4, page numbers and the software version
in the page margins (CSS page-margin boxes), its own header and footer switched off. Chromium is
optional: without it the report stage writes the HTML only and says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["find_chromium", "chromium_command", "html_to_pdf", "CHROMIUM_NAMES"]

#: Executable names tried in order (Debian: chromium; other systems: the others).
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """Path of a Chromium executable, from ``$SPECTDOSE_CHROMIUM`` or ``PATH``; ``None`` when absent."""
    explicit = os.environ.get("SPECTDOSE_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() and os.access(explicit, os.X_OK) else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def chromium_command(chromium: str, profile_dir: Path, *args: str) -> list:
    """Headless Chromium with a private profile, no sandbox when run as root, no network services."""
    cmd = [chromium, "--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
           "--disable-extensions", "--disable-background-networking", "--disable-sync",
           "--hide-scrollbars", "--mute-audio", f"--user-data-dir={profile_dir}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--no-sandbox")  # Chromium refuses to start as root with its sandbox
    return cmd + list(args)


def html_to_pdf(html_path, pdf_path, chromium: str | None = None, timeout_s: float = 180.0) -> Path:
    """Print ``html_path`` to ``pdf_path`` (written to a temporary name and renamed).

    Parameters
    ----------
    html_path : path
        The self-contained report page.
    pdf_path : path
        The PDF to write.
    chromium : str, optional
        Chromium executable (default: :func:`find_chromium`).
    timeout_s : float
        Seconds before Chromium is given up on.

    Returns
    -------
    Path
        ``pdf_path``.

    Raises
    ------
    RuntimeError
        Chromium is missing, fails, times out or writes no PDF.
    """
    from ..atomic import atomic_path

    chromium = chromium or find_chromium()
    if chromium is None:
        raise RuntimeError("Chromium not found (install the Debian package chromium, or set SPECTDOSE_CHROMIUM)")
    html_path = Path(html_path).resolve()
    with tempfile.TemporaryDirectory(prefix="spectdose-chromium-") as profile, atomic_path(pdf_path) as tmp:
        cmd = chromium_command(chromium, Path(profile), "--no-pdf-header-footer",
                               f"--print-to-pdf={tmp}", html_path.as_uri())
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                                    env=dict(os.environ, HOME=profile))
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"Chromium did not finish printing within {timeout_s:.0f} s") from exc
        if result.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"Chromium could not print the report (exit {result.returncode}): {' | '.join(tail)}")
    return Path(pdf_path)
