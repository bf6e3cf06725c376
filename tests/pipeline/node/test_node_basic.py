"""The node end to end with the fake workflow: receive, session, run, export, send, privacy."""

from __future__ import annotations

import sqlite3

import pydicom
import pytest

import node_factory as fac
from pipeline.node.config import read_config
from pipeline.errors import InputError


def test_echo_is_answered_and_unknown_callers_are_refused(harness):
    h = harness()
    assert fac.echo(h.port) == 0x0000
    assert fac.echo(h.port, calling_ae="STRANGER") is None          # AE title not listed: rejected
    assert fac.echo(h.port, calling_ae="OTHERHOST") is None         # listed AE, other host: aborted
    statuses = h.send(fac.make_session(1).ct[:1], calling_ae="OTHERHOST") or []
    assert 0 not in statuses                                        # aborted, or refused with 0x0124
    assert not list((h.config.spool / "dicom").rglob("*.dcm"))
    assert "caller not allowed" in h.log_text()


def test_one_session_runs_once_and_the_results_reach_the_pacs_with_the_original_identifiers(harness):
    h = harness()
    session = fac.make_session(24)
    assert h.send(session.all) == [0] * len(session.all)
    h.run_until_idle()
    runs = h.runs()
    assert [r["event"] for r in runs] == ["start", "end"]
    assert runs[0]["time_points"] == ["t24h"]
    pseudonym = runs[0]["patient"]
    assert pseudonym.startswith("SD") and fac.PHI["PatientID"] not in pseudonym
    assert runs[0]["sheet"]["sex"] == "male"
    status = h.node.status()
    assert [(s["state"], s["time_point"]) for s in status] == [("done", "t24h")]
    got = {ds.Modality: ds for ds in h.receiver.received}
    assert sorted(got) == ["DOC", "RTDOSE", "SEG"]
    for ds in got.values():
        assert (str(ds.PatientName), ds.PatientID) == (fac.PHI["PatientName"], fac.PHI["PatientID"])
        assert ds.StudyInstanceUID == session.ct[0].StudyInstanceUID
    assert got["RTDOSE"].FrameOfReferenceUID == session.ct[0].FrameOfReferenceUID
    # the workflow side (manifest, sheet, results) and the node log never see an identifier
    texts = [p.read_text(errors="replace") for p in h.config.workdir.rglob("*")
             if p.is_file() and p.suffix in (".yaml", ".tsv", ".json", ".log", ".jsonl", ".html")]
    texts.append(h.log_text())
    for text in texts:
        for value in fac.PHI.values():
            if len(value) > 1:
                assert value not in text
    assert "C-STORE to TESTPACS@127.0.0.1" in h.log_text()
    files = sorted((h.config.spool / "outbox").rglob("*.dcm"))
    assert [f.name for f in files] == ["report.dcm", "rtdose.dcm", "seg.dcm"]
    assert all(pydicom.dcmread(f).PatientID == fac.PHI["PatientID"] for f in files)


def test_each_new_session_is_added_to_the_manifest_and_earlier_ones_are_not_run_again(harness):
    h = harness()
    h.send(fac.make_session(4).all)
    h.run_until_idle()
    (first,) = (h.config.spool / "sessions").glob("*/1")
    stamp = [p.stat().st_mtime_ns for p in (first, first / "ct", first / "spect")]
    h.send(fac.make_session(24).all)
    h.run_until_idle()
    # the first session's input folder is not rewritten (snakemake would redo its ingest)
    assert [p.stat().st_mtime_ns for p in (first, first / "ct", first / "spect")] == stamp
    starts = [r for r in h.runs() if r["event"] == "start"]
    assert [r["time_points"] for r in starts] == [["t4h"], ["t4h", "t24h"]]
    rows = h.node.db.query("SELECT id, run_id, state FROM sessions ORDER BY id")
    assert [(r["run_id"], r["state"]) for r in rows] == [(1, "done"), (2, "done")]


def test_a_session_arriving_during_a_run_is_queued_and_run_after_it(harness):
    h = harness()
    (h.root / "work").mkdir(exist_ok=True)
    (h.config.workdir / "sleep_s").write_text("0.6")
    h.send(fac.make_session(1).all)
    assert _wait(h, lambda: h.node.db.query("SELECT 1 FROM runs WHERE state='running'"))
    h.send(fac.make_session(4).all)
    assert _wait(h, lambda: h.node.db.query("SELECT 1 FROM sessions WHERE id=2 AND state='queued'"))
    assert len(h.node.db.query("SELECT 1 FROM runs")) == 1   # one workflow per patient at a time
    h.run_until_idle()
    starts = [r["time_points"] for r in h.runs() if r["event"] == "start"]
    assert starts == [["t1h"], ["t1h", "t4h"]]


def test_missing_injection_record_waits_with_a_clear_message_until_an_override_arrives(harness):
    h = harness()
    h.send(fac.make_session(24, injection=False).all)
    assert _wait(h, lambda: h.node.db.query("SELECT 1 FROM sessions WHERE state='waiting'"))
    row = h.node.status()[0]
    assert "waiting for the injection record" in row["detail"]
    assert f"overrides/{row['pseudonym']}.yaml" in row["detail"]
    assert "waiting for the injection record" in h.log_text()
    assert h.runs() == []
    override = h.config.spool / "overrides" / f"{row['pseudonym']}.yaml"
    override.parent.mkdir(parents=True, exist_ok=True)
    override.write_text("injection_datetime: '2026-03-02T09:00:00'\ninjected_activity_mbq: 7400\n"
                        "absent_organs: [kidney_left, spleen]\n")  # the physicist's: nephrectomy, splenectomy
    h.run_until_idle()
    starts = [r for r in h.runs() if r["event"] == "start"]
    assert len(starts) == 1 and starts[0]["time_points"] == ["t24h"]
    assert starts[0]["sheet"]["injected_mbq"] == "7400"
    assert starts[0]["sheet"]["absent_organs"] == "kidney_left,spleen"  # the sheet's column


def test_status_command_and_purge_remove_the_phi(harness, tmp_path, capsys):
    from pipeline.node.cli import main

    h = harness()
    h.send(fac.make_session(1).all)
    h.run_until_idle()
    pseudonym = h.node.status()[0]["pseudonym"]
    h.node.stop()
    assert main(["--config", str(tmp_path / "node.yaml"), "--status"]) == 0
    out = capsys.readouterr().out
    assert pseudonym in out and "done" in out and fac.PHI["PatientID"] not in out
    assert main(["--config", str(tmp_path / "node.yaml"), "--purge", pseudonym]) == 0
    assert not list((h.config.spool / "dicom").rglob("*.dcm"))
    assert not (h.config.spool / "outbox" / pseudonym).exists()
    with sqlite3.connect(h.config.db_path) as conn:
        assert conn.execute("SELECT count(*) FROM patients").fetchone()[0] == 0
    assert (h.config.workdir / "results" / pseudonym / "dose" / "dose_ct.nii.gz").is_file()  # pseudonymous: kept


@pytest.mark.parametrize("text, problem", [
    ("spool: s\n", "`workdir` is required"),
    ("spool: s\nworkdir: w\nport: -1\n", "port must be a number >= 0"),
    ("spool: s\nworkdir: w\nae_title: THIS_IS_FAR_TOO_LONG\n", "AE title must be 1-16"),
    ("spool: s\nworkdir: w\ncolour: red\n", "unknown key(s): colour"),
    ("spool: s\nworkdir: w\ndestinations: [{ae_title: X}]\n", "needs ae_title, host and port"),
])
def test_bad_configuration_names_the_file_and_the_key(tmp_path, text, problem):
    path = tmp_path / "node.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        read_config(path)
    assert str(err.value).startswith(str(path)) and problem in str(err.value)


def _wait(h, predicate, timeout_s=20.0):
    import time

    end = time.time() + timeout_s
    while time.time() < end:
        h.node.step()
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_the_command_serves_until_sigterm(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from node_helpers import write_config
    from orthanc_server import free_port

    port = free_port()
    config = write_config(tmp_path, port=port)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "node", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        status = None
        for _ in range(100):
            status = fac.echo(port)
            if status is not None:
                break
            time.sleep(0.1)
        assert status == 0x0000
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Storage SCP SPECTDOSE listening on 127.0.0.1:" in err
    assert "C-ECHO from AE SCANNER at 127.0.0.1" in (tmp_path / "spool" / "logs" / "node.log").read_text()


def test_a_port_in_use_is_one_line_naming_the_config(tmp_path, capsys):
    import socket

    from node_helpers import write_config
    from pipeline.node.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        config = write_config(tmp_path, port=busy.getsockname()[1])
        assert main(["--config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"spectdose node: error: {config}: cannot listen on 127.0.0.1:")
