"""A real Orthanc (Debian package ``orthanc``) for the end-to-end node test, on loopback ports.

The configuration is written by the test: no plugins, HTTP only from this machine, DICOM
stores accepted only from the modalities it lists (with their host checked).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Orthanc:
    """``Orthanc`` started with a test configuration in ``root``; REST helpers."""

    def __init__(self, executable: str, root: Path, modalities: dict):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.http_port, self.dicom_port = free_port(), free_port()
        config = {
            "Name": "spectdose-e2e", "StorageDirectory": str(self.root / "storage"),
            "IndexDirectory": str(self.root / "index"), "Plugins": [], "HttpPort": self.http_port,
            "DicomPort": self.dicom_port, "DicomAet": "ORTHANC", "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False, "DicomAlwaysAllowStore": False, "DicomCheckModalityHost": True,
            "DicomCheckCalledAet": True, "HttpTimeout": 600, "DicomScuTimeout": 120,
            "DicomModalities": {name: {"AET": aet, "Host": host, "Port": port, "AllowStore": True}
                                for name, (aet, host, port) in modalities.items()},
        }
        self.config_path = self.root / "orthanc.json"
        self.config_path.write_text(json.dumps(config, indent=1))
        self.log = open(self.root / "orthanc.log", "wb")
        self.proc = subprocess.Popen([executable, str(self.config_path)], stdout=self.log, stderr=subprocess.STDOUT)
        end = time.time() + 60
        while time.time() < end:
            try:
                self.get("/system")
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"Orthanc did not start: {(self.root / 'orthanc.log').read_text(errors='replace')[-2000:]}")

    def _request(self, method: str, path: str, body: bytes | None = None, content_type="application/json"):
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=body, method=method,
                                     headers={"Content-Type": content_type} if body is not None else {})
        with urllib.request.urlopen(req, timeout=600) as resp:
            return resp.read()

    def get(self, path: str):
        return json.loads(self._request("GET", path))

    def get_bytes(self, path: str) -> bytes:
        return self._request("GET", path)

    def post(self, path: str, data):
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        ctype = "application/dicom" if isinstance(data, bytes) else "application/json"
        return json.loads(self._request("POST", path, body, ctype) or b"null")

    def upload(self, files) -> int:
        for path in files:
            self.post("/instances", Path(path).read_bytes())
        return len(files)

    def find(self, level: str, **query) -> list[str]:
        return self.post("/tools/find", {"Level": level, "Query": query})

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
