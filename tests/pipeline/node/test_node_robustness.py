"""Faults the node must survive, each checked for nothing lost and no duplicate run."""

from __future__ import annotations

import errno
import shutil
import sys
import time
from pathlib import Path

import pytest

import node_factory as fac
from node_helpers import HERE, wait_for


def _instances(h) -> int:
    return h.node.db.query("SELECT count(*) AS n FROM instances")[0]["n"]


def _files(h) -> int:
    return len(list((h.config.spool / "dicom").rglob("*.dcm")))


def _ends(h) -> list:
    return [r["time_points"] for r in h.runs() if r["event"] == "end"]


def test_dropped_association_then_resend_loses_nothing_and_runs_once(harness):
    h = harness()
    s = fac.make_session(24)
    assert h.send(s.all, abort_after=3) == [0, 0, 0]       # the sender drops the association mid-series
    assert not list((h.config.spool / "dicom").rglob(".*.tmp"))
    assert h.send(s.all) == [0] * 7                          # and sends everything again
    h.run_until_idle()
    assert _instances(h) == _files(h) == 7
    assert _ends(h) == [["t24h"]]
    assert "dropped without release: 3 stored" in h.log_text() or "aborted: 3 stored" in h.log_text()


def test_duplicates_before_and_after_the_run_store_once_and_do_not_rerun(harness):
    h = harness()
    s = fac.make_session(4)
    h.send(s.all)
    h.send(s.all)
    h.run_until_idle()
    h.send(s.all)                                            # resent after the results went out
    h.run_until_idle()
    assert _instances(h) == _files(h) == 7
    assert _ends(h) == [["t4h"]]
    assert "7 duplicate" in h.log_text()


def test_series_split_over_associations_and_across_the_quiet_period_make_one_session(harness):
    h = harness()
    s = fac.make_session(48)
    h.send(s.ct[:2])
    h.send(s.ct[2:4])
    h.send([s.spect])
    h.node.step()
    time.sleep(h.config.quiet_period_s + 0.2)   # the CT's last slices come after a quiet period
    h.node.step()                               # SPECT + partial CT: paired, session receiving
    h.send(s.ct[4:])
    h.run_until_idle()
    assert _instances(h) == 7
    sessions = h.node.db.query("SELECT * FROM sessions")
    assert len(sessions) == 1 and sessions[0]["state"] == "done"
    ends = _ends(h)
    assert ends[-1] == ["t48h"] and len(ends) <= 2  # one run, or the early one and a rerun with all slices
    # the last run saw every slice of the CT
    linked = list((h.config.spool / "sessions").rglob("ct/*.dcm"))
    assert len(linked) == 6


@pytest.mark.slow
def test_a_spect_without_its_ct_waits_for_the_ct(harness):
    h = harness()
    s = fac.make_session(1)
    h.send([s.spect])
    assert wait_for(lambda: "has no CT yet" in h.log_text(), 10, h.node.step)
    assert h.node.db.query("SELECT count(*) AS n FROM sessions")[0]["n"] == 0
    h.send(s.ct)
    h.run_until_idle()
    assert _ends(h) == [["t1h"]]


def test_restart_with_a_half_received_session_loses_nothing_and_runs_once(harness):
    h = harness()
    s = fac.make_session(24)
    h.send(s.ct[:3])
    h.restart()
    h.send([*s.ct[3:], s.spect])
    h.run_until_idle()
    assert _instances(h) == _files(h) == 7
    assert _ends(h) == [["t24h"]]


@pytest.mark.slow
def test_a_file_written_just_before_a_crash_is_recorded_at_restart(harness):
    h = harness()
    s = fac.make_session(24)
    h.send(s.all)
    # simulate a crash between the rename and the database insert of one instance
    victim = s.ct[0].SOPInstanceUID
    h.node.db.execute("DELETE FROM instances WHERE sop_uid=?", (victim,))
    leftover = next((h.config.spool / "dicom").rglob("*.dcm")).parent / f".{victim}.123.tmp"
    leftover.write_bytes(b"half a file")
    h.restart()
    assert h.node.db.query("SELECT 1 FROM instances WHERE sop_uid=?", (victim,))
    assert not leftover.exists()
    h.run_until_idle()
    assert _ends(h) == [["t24h"]]


def test_restart_during_a_workflow_stops_it_and_runs_the_session_to_the_end_once(harness):
    h = harness()
    h.config.workdir.mkdir(parents=True, exist_ok=True)
    (h.config.workdir / "sleep_s").write_text("30")
    h.send(fac.make_session(24).all)
    assert wait_for(lambda: h.node.db.query("SELECT 1 FROM runs WHERE state='running'"), 20, h.node.step)
    assert wait_for(lambda: [r for r in h.runs() if r["event"] == "start"], 20)
    h.node.stop()                                      # the node dies; its workflow is orphaned
    (h.config.workdir / "sleep_s").write_text("0")
    h.restart()                                        # recover: stop the orphan, requeue its session
    h.run_until_idle()
    runs = h.node.db.query("SELECT state FROM runs ORDER BY id")
    assert [r["state"] for r in runs] == ["interrupted", "done"]
    assert [r["event"] for r in h.runs()] == ["start", "start", "end"]
    assert _ends(h) == [["t24h"]]
    assert "interrupted by a node restart" in h.log_text()


def test_full_disk_refuses_with_a_logged_error_and_keeps_what_it_has(harness):
    h = harness()
    first = fac.make_session(4)
    h.send(first.ct[:2])
    h.restart(min_free_mb=10**9)                       # the disk is now "full" for the node
    statuses = h.send([*first.ct[2:], first.spect])
    assert statuses == [0xA700] * 5
    assert _instances(h) == _files(h) == 2             # what it had is kept
    assert "disk full" in h.log_text() and "status 0xA700" in h.log_text()
    h.restart(min_free_mb=1)                           # space freed; the sender tries again
    h.send(first.all)
    h.run_until_idle()
    assert _instances(h) == _files(h) == 7
    assert _ends(h) == [["t4h"]]


def test_a_write_failing_with_enospc_leaves_no_file_and_answers_a700(harness, monkeypatch):
    import os

    h = harness()
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("pipeline.node.spool.os.fsync", full)
    assert h.send(fac.make_session(4).ct[:1]) == [0xA700]
    monkeypatch.setattr("pipeline.node.spool.os.fsync", real_fsync)
    assert _files(h) == 0 and not list((h.config.spool / "dicom").rglob(".*"))
    assert "disk full (write failed)" in h.log_text()


def test_a_failing_workflow_is_recorded_and_the_node_serves_other_patients(harness):
    h = harness()
    a = fac.make_session(24)
    b = fac.make_session(24, phi={**fac.PHI, "PatientID": "MRN-11112222", "PatientName": "Poe^Edgar"})
    h.send(a.ct[:1])
    pseudonym_a = h.node.db.query("SELECT pseudonym FROM patients")[0]["pseudonym"]
    h.config.workdir.mkdir(parents=True, exist_ok=True)
    (h.config.workdir / f"fail_{pseudonym_a}").write_text("")
    h.send(a.all)
    h.send(b.all)
    h.run_until_idle()
    by_patient = {r["pseudonym"]: r for r in h.node.status()}
    assert by_patient[pseudonym_a]["state"] == "failed"
    assert "kidney on bowel" in by_patient[pseudonym_a]["detail"]
    (pseudonym_b,) = set(by_patient) - {pseudonym_a}
    assert by_patient[pseudonym_b]["state"] == "done"
    assert {ds.PatientID for ds in h.receiver.received} == {"MRN-11112222"}
    assert f"patient {pseudonym_a}: run 1 failed" in h.log_text() or "failed: workflow exit code 1" in h.log_text()


@pytest.mark.slow
def test_new_instances_after_a_run_rerun_that_session_once(harness):
    h = harness()
    s = fac.make_session(24, n_slices=6)
    h.send([*s.ct[:5], s.spect])                       # slice 6 is late (a resend after a scanner fault)
    h.run_until_idle()
    h.send(s.ct[5:])
    h.run_until_idle()
    assert _ends(h) == [["t24h"], ["t24h"]]
    assert [r["state"] for r in h.node.db.query("SELECT state FROM sessions")] == ["done"]
    shutil.rmtree(h.config.spool / "outbox")


@pytest.mark.slow
def test_an_unreachable_pacs_is_recorded_and_the_send_is_retried(harness, tmp_path):
    from orthanc_server import free_port
    from pipeline.node import send as send_module

    port = free_port()                                  # nothing listens there yet
    h = harness(destinations=[{"ae_title": "LATEPACS", "host": "127.0.0.1", "port": port}])
    h.send(fac.make_session(24).all)
    h.run_until_idle()
    run = h.node.db.query("SELECT * FROM runs")[0]
    sends = h.node.db.query("SELECT * FROM sends")
    assert run["state"] == "failed" and "sending the results failed" in run["detail"]
    assert [(s["state"], s["attempts"]) for s in sends] == [("failed", 1)]
    assert "C-STORE to LATEPACS@127.0.0.1" in h.log_text()
    late = fac.Receiver(port=port).start()              # the PACS is back
    try:
        h.node.sender.retry_failed(now=time.time() + send_module.RETRY_AFTER_S + 1)
        assert sorted(ds.Modality for ds in late.received) == ["DOC", "RTDOSE", "SEG"]
    finally:
        late.stop()
    assert h.node.db.query("SELECT state, attempts FROM sends")[0] == {"state": "done", "attempts": 2}
    assert h.node.db.query("SELECT state FROM runs")[0]["state"] == "done"
    assert _ends(h) == [["t24h"]]                       # the workflow itself ran once


@pytest.mark.slow
def test_a_workflow_past_its_timeout_is_stopped_and_recorded(harness):
    h = harness(workflow={"command": [sys.executable, str(HERE / "fake_workflow.py"), "{workdir}", "{sheet}",
                                      "{patient}"], "timeout_min": 0.02})
    h.config.workdir.mkdir(parents=True, exist_ok=True)
    (h.config.workdir / "sleep_s").write_text("60")
    h.send(fac.make_session(24).all)
    h.run_until_idle(timeout_s=30)
    run = h.node.db.query("SELECT * FROM runs")[0]
    assert run["state"] == "failed" and run["detail"] == "timed out after 0.02 min"
    assert [r["event"] for r in h.runs()] == ["start"]
    pid = run["pid"]
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


@pytest.mark.slow
def test_a_workflow_command_that_cannot_start_is_recorded(harness):
    h = harness(workflow={"command": ["/nonexistent/snakemake", "{sheet}"]})
    h.send(fac.make_session(24).all)
    h.run_until_idle(timeout_s=20)
    run = h.node.db.query("SELECT * FROM runs")[0]
    assert run["state"] == "failed" and "cannot start the workflow command '/nonexistent/snakemake'" in run["detail"]
    assert [s["state"] for s in h.node.status()] == ["failed"]
