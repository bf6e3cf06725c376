"""Sessions: a SPECT series and its CT, complete after a quiet period, checked before they queue.

A patient's new series are looked at once none of them received an instance for
``quiet_period_s``. Every reconstructed SPECT series not yet in a session is paired with a CT
of the patient exactly as the ingest stage pairs them (:func:`pipeline.ingest.pairing.pair_spect_with_ct`:
same frame of reference, else same study within 30 min, closest in time). A session whose
instances stopped arriving for the quiet period is then checked: it queues when the patient
has an injection record (RadiopharmaceuticalStartDateTime or StartTime and the total dose, in
any session's SPECT header or in ``overrides/<pseudonym>.yaml``) and a sex (PatientSex M/F,
the override, or ``sex_default``); otherwise it waits and says which.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pipeline.errors import InputError

from .config import NodeConfig
from .db import NodeDB

__all__ = ["assemble_sessions", "check_ready", "read_overrides", "patient_facts", "time_point_name"]

log = logging.getLogger("spectdose.node")
SPECT_KINDS = ("spect_multiframe", "spect_slices")
#: Keys of ``overrides/<pseudonym>.yaml``: the injection record, the sex, and the sheet's per-patient
#: settings a physicist may need (``vertebra_level``, ``reference_time_point``, ``calibration_cps_per_mbq``,
#: ``absent_organs``).
OVERRIDE_KEYS = {"radionuclide", "injected_activity_mbq", "injection_datetime", "sex", "vertebra_level",
                 "reference_time_point", "calibration_cps_per_mbq", "absent_organs"}


def read_overrides(config: NodeConfig, pseudonym: str) -> dict:
    """``<spool>/overrides/<pseudonym>.yaml`` (injection record, sex), ``{}`` when absent."""
    import yaml

    path = config.spool / "overrides" / f"{pseudonym}.yaml"
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InputError(path, f"not valid YAML: {exc}") from None
    if not isinstance(data, dict) or set(data) - OVERRIDE_KEYS:
        raise InputError(path, f"overrides may hold only {', '.join(sorted(OVERRIDE_KEYS))}")
    return data


def _series_objects(spool_patient_dir: Path):
    from pipeline.ingest.dicom_scan import scan_folder

    return scan_folder(spool_patient_dir).series


def _acquired(series):
    from pipeline.ingest.timing import acquisition_datetime

    try:
        return acquisition_datetime(series.headers, series.files[0])[0]
    except InputError:
        return None


def assemble_sessions(db: NodeDB, config: NodeConfig, now: float | None = None, looked_at: dict | None = None
                      ) -> list[int]:
    """Create sessions for the SPECT series of patients that went quiet; returns the new session ids.

    ``looked_at`` (patient key -> latest arrival already looked at) keeps a patient whose SPECT
    has no CT yet from being scanned again before anything new arrives.
    """
    from pipeline.ingest.pairing import pair_spect_with_ct
    from pipeline.ingest.timing import acquisition_datetime, on_clock_of, wall_clock

    now = time.time() if now is None else now
    looked_at = {} if looked_at is None else looked_at
    quiet = now - config.quiet_period_s
    rows = db.query("SELECT patient_key, max(last_received) AS last FROM series WHERE session_id IS NULL "
                    "GROUP BY patient_key HAVING max(last_received) <= ? AND sum(modality IN ('NM', 'PT')) > 0",
                    (quiet,))
    keys = [r["patient_key"] for r in rows if looked_at.get(r["patient_key"]) != r["last"]]
    looked_at.update({r["patient_key"]: r["last"] for r in rows})
    created = []
    for key in keys:
        known = {r["series_uid"] for r in db.query("SELECT series_uid FROM series WHERE patient_key=?", (key,))}
        pseudonym = db.pseudonym(key)
        try:
            series = [s for s in _series_objects(config.spool / "dicom" / key) if s.series_uid in known]
        except InputError as exc:
            log.error("patient %s: the spool cannot be read: %s", pseudonym, _no_path(exc))
            continue
        cts = [s for s in series if s.kind == "ct"]
        ct_times = [_acquired(ct) for ct in cts]
        taken = {r["spect_series"] for r in db.query("SELECT spect_series FROM sessions WHERE patient_key=?", (key,))}
        for spect in (s for s in series if s.kind in SPECT_KINDS and s.series_uid not in taken):
            try:
                acq, _ = acquisition_datetime(spect.headers, spect.files[0])
                pairing = pair_spect_with_ct(spect, wall_clock(acq), cts,
                                             [None if t is None else on_clock_of(t, acq) for t in ct_times])
            except InputError as exc:
                _note_unpaired(db, spect.series_uid, pseudonym, exc)
                continue
            ct = cts[pairing.ct_index]
            last = max(r["last_received"] for r in db.query(
                "SELECT last_received FROM series WHERE series_uid IN (?, ?)", (spect.series_uid, ct.series_uid)))
            with db.transaction() as conn:
                cur = conn.execute(
                    "INSERT INTO sessions (patient_key, spect_series, ct_series, state, detail, last_received, created, "
                    "updated) VALUES (?,?,?,?,?,?,?,?)",
                    (key, spect.series_uid, ct.series_uid, "receiving", "", last, now, now))
                sid = cur.lastrowid
                conn.execute("UPDATE series SET session_id=? WHERE series_uid IN (?, ?)",
                             (sid, spect.series_uid, ct.series_uid))
            created.append(sid)
            log.info("patient %s: session %d (SPECT series %s with CT series %s, paired by %s)", pseudonym, sid,
                     spect.series_uid, ct.series_uid, pairing.method.replace("_", " "))
    return created


def _no_path(exc: InputError) -> str:
    return exc.problem if isinstance(exc, InputError) else str(exc)


def _note_unpaired(db: NodeDB, series_uid: str, pseudonym: str, exc: InputError) -> None:
    """A SPECT without its CT yet: left unassigned (the CT may still come), said in the log."""
    log.warning("patient %s: SPECT series %s has no CT yet (%s); waiting for more series", pseudonym, series_uid,
                _no_path(exc))


def patient_facts(db: NodeDB, config: NodeConfig, key: str) -> dict:
    """Injection record and sex of a patient from its SPECT headers and overrides (no identifiers)."""
    import pydicom

    from pipeline.ingest.timing import injection_record

    pseudonym = db.pseudonym(key)
    overrides = read_overrides(config, pseudonym)
    facts = {"injection_datetime": None, "injected_activity_mbq": None, "radionuclide": None, "sex": None}
    spects = db.query("SELECT spect_series FROM sessions WHERE patient_key=? ORDER BY id", (key,))
    for row in spects:
        paths = db.query("SELECT path FROM instances WHERE series_uid=? LIMIT 1", (row["spect_series"],))
        if not paths:
            continue
        ds = pydicom.dcmread(paths[0]["path"], stop_before_pixels=True)
        try:
            record = injection_record(ds, paths[0]["path"])
        except InputError:
            continue
        facts["injection_datetime"] = facts["injection_datetime"] or record.injection_datetime
        facts["injected_activity_mbq"] = facts["injected_activity_mbq"] or record.injected_activity_mbq
        facts["radionuclide"] = facts["radionuclide"] or record.nuclide
        sex = str(ds.get("PatientSex", "") or "").upper()
        facts["sex"] = facts["sex"] or {"M": "male", "F": "female"}.get(sex)
    facts.update({k: v for k, v in overrides.items() if v is not None})
    facts["sex"] = facts["sex"] or config.sex_default
    facts["overrides"] = overrides
    return facts


def check_ready(db: NodeDB, config: NodeConfig, now: float | None = None) -> list[int]:
    """Move quiet ``receiving``/``waiting`` sessions to ``queued`` or ``waiting``; returns the queued ids."""
    now = time.time() if now is None else now
    rows = db.query("SELECT id, patient_key, state, detail FROM sessions WHERE state IN ('receiving', 'waiting') "
                    "AND last_received <= ? ORDER BY id", (now - config.quiet_period_s,))
    queued = []
    for row in rows:
        pseudonym = db.pseudonym(row["patient_key"])
        try:
            facts = patient_facts(db, config, row["patient_key"])
        except InputError as exc:
            missing = [f"the override file is unusable: {exc}"]
        else:
            missing = []
            if facts["injection_datetime"] is None or facts["injected_activity_mbq"] is None:
                missing.append("the injection record (RadiopharmaceuticalStartDateTime and RadionuclideTotalDose "
                               f"in the SPECT header, or injection_datetime and injected_activity_mbq in "
                               f"overrides/{pseudonym}.yaml)")
            if facts["sex"] is None:
                missing.append(f"the patient's sex (PatientSex M/F, sex in overrides/{pseudonym}.yaml, or "
                               "sex_default in node.yaml)")
        if missing:
            detail = "waiting for " + " and ".join(missing)
            if row["state"] != "waiting" or row["detail"] != detail:
                db.execute("UPDATE sessions SET state='waiting', detail=?, updated=? WHERE id=?", (detail, now, row["id"]))
                log.warning("patient %s: session %d %s", pseudonym, row["id"], detail)
            continue
        db.execute("UPDATE sessions SET state='queued', detail='', updated=? WHERE id=?", (now, row["id"]))
        queued.append(row["id"])
        log.info("patient %s: session %d complete and queued", pseudonym, row["id"])
    return queued


def time_point_name(acquisition, injection, taken: set) -> str:
    """``t<hours>h`` as the ingest names time points, made unique with ``_2``, ``_3``, ..."""
    from pipeline.ingest.run import time_point_id_from_hours
    from pipeline.ingest.timing import seconds_between

    base = time_point_id_from_hours(seconds_between(injection, acquisition) / 3600.0)
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return name
