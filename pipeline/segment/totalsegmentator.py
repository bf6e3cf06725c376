"""Run TotalSegmentator, only when it is installed and its weights are already on disk.

spectdose never lets TotalSegmentator download anything or send usage
statistics:

- the weights folder is ``$TOTALSEG_WEIGHTS_PATH`` or, as in TotalSegmentator's
  own ``config.get_weights_dir``, ``$TOTALSEG_HOME_DIR/nnunet/results``
  (default ``~/.totalsegmentator/nnunet/results``); the ``total`` task needs
  its nnU-Net dataset folders ``Dataset291`` ... ``Dataset295`` there
  (``Dataset297`` with ``fast``); when any is missing we stop with a message
  on how to provide them, before TotalSegmentator is started;
- TotalSegmentator runs in a child process with ``TOTALSEG_WEIGHTS_PATH`` set
  to that folder and ``TOTALSEG_HOME_DIR`` set to a fresh private folder whose
  ``config.json`` has ``"send_usage_stats": false`` (the switch its
  ``config.send_usage_stats`` reads), and with HTTP(S) proxies pointing to an
  unusable local address so that any attempted network access fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import SpectdoseError

__all__ = ["TOTAL_TASK_DATASETS", "weights_dir", "missing_weights", "find_executable", "offline_env",
           "run_totalsegmentator"]

#: nnU-Net dataset ids of TotalSegmentator v2 task "total" (normal and fast resolution).
TOTAL_TASK_DATASETS = {False: (291, 292, 293, 294, 295), True: (297,)}


def weights_dir(environ=None) -> Path:
    """Folder where TotalSegmentator looks for its weights (its own rule, see module docstring)."""
    env = os.environ if environ is None else environ
    if env.get("TOTALSEG_WEIGHTS_PATH"):
        return Path(env["TOTALSEG_WEIGHTS_PATH"]).expanduser()
    home = Path(env["TOTALSEG_HOME_DIR"]).expanduser() if env.get("TOTALSEG_HOME_DIR") else \
        Path.home() / ".totalsegmentator"
    return home / "nnunet" / "results"


def missing_weights(folder: Path, fast: bool = False) -> list[int]:
    """Dataset ids of the ``total`` task whose folder ``Dataset<id>_*`` is absent from ``folder``."""
    present = set()
    if folder.is_dir():
        for p in folder.iterdir():
            if p.is_dir() and p.name.startswith("Dataset") and p.name[7:10].isdigit():
                present.add(int(p.name[7:10]))
    return [d for d in TOTAL_TASK_DATASETS[fast] if d not in present]


def find_executable() -> str | None:
    """Path of the ``TotalSegmentator`` command, or None when it is not installed."""
    return shutil.which("TotalSegmentator") or shutil.which("totalsegmentator")


def offline_env(weights: Path, home: Path, base=None) -> dict:
    """Environment for the child process: weights given, private home without usage statistics, no network."""
    env = dict(os.environ if base is None else base)
    env["TOTALSEG_WEIGHTS_PATH"] = str(weights)
    env["TOTALSEG_HOME_DIR"] = str(home)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env[var] = "http://127.0.0.1:9"
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    return env


def _how_to_provide(folder: Path, missing: list[int]) -> str:
    return (f"TotalSegmentator weights are not on disk (missing Dataset{', Dataset'.join(map(str, missing))} in "
            f"{folder}); spectdose never downloads them. On a machine with network access run "
            "`TotalSegmentator --download_weights` (or `totalseg_download_weights -t total`), copy the "
            "folder nnunet/results to this machine and set TOTALSEG_WEIGHTS_PATH to it; or use "
            "--backend builtin, or import masks with --backend nifti/dicom-seg/rtstruct")


def run_totalsegmentator(ct_path, out_dir, fast: bool = False, device: str = "cpu", timeout_s: float = 3600) -> Path:
    """Run the ``total`` task on a CT NIfTI file; return the folder of per-structure masks.

    Raises
    ------
    SpectdoseError
        When TotalSegmentator is not installed, its weights are absent, or it fails.
    """
    exe = find_executable()
    if exe is None:
        raise SpectdoseError("TotalSegmentator is not installed (pip install TotalSegmentator, then provide "
                             "its weights offline); or use --backend builtin")
    folder = weights_dir()
    missing = missing_weights(folder, fast)
    if missing:
        raise SpectdoseError(_how_to_provide(folder, missing))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="spectdose_totalseg_home_") as home:
        Path(home, "config.json").write_text(json.dumps(
            {"totalseg_id": "totalseg_spectdose", "send_usage_stats": False, "prediction_counter": 0}))
        cmd = [exe, "-i", str(ct_path), "-o", str(out_dir), "-ta", "total", "--device", device,
               "--roi_subset", "kidney_left", "kidney_right", "liver", "spleen",
               "vertebrae_L2", "vertebrae_L3", "vertebrae_L4"]
        if fast:
            cmd.append("--fast")
        try:
            proc = subprocess.run(cmd, env=offline_env(folder, Path(home)), capture_output=True, text=True,
                                  timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise SpectdoseError(f"TotalSegmentator did not finish within {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise SpectdoseError(f"TotalSegmentator failed (exit {proc.returncode}): {' | '.join(tail)}")
    return out_dir
