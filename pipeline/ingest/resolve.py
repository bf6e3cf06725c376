"""Which radionuclide, which injection, which patient: settled from the headers of all series.

Split from :mod:`pipeline.ingest.run` (planning). Each function takes the planned
sessions (:class:`pipeline.ingest.run.PlannedTimePoint`) and the user's
overrides, appends warnings to ``warnings`` and raises
:class:`pipeline.errors.InputError` when the records contradict each other.
"""

from __future__ import annotations

from pipeline.errors import InputError

from .dicom_scan import DicomSeries
from .timing import check_half_life, format_utc_offset, resolve_nuclide, seconds_between, wall_clock

__all__ = ["INJECTION_AGREEMENT_S", "ACTIVITY_AGREEMENT_RTOL", "resolve_nuclide_of", "resolve_injection",
           "check_one_patient"]

#: Injection records of different series must agree within this (s) to be one injection.
INJECTION_AGREEMENT_S = 60.0
#: Injected activities of different series must agree within this relative tolerance.
ACTIVITY_AGREEMENT_RTOL = 0.01


def resolve_nuclide_of(sessions, overrides, where, warnings, sources):
    """The radionuclide and its ICRP-107 half-life (h), checked against every DICOM record.

    The stated radionuclide (command line, else manifest; ``sources["radionuclide"]``
    names which) wins over the DICOM only when nothing in the DICOM contradicts
    it. A RadionuclideCodeSequence naming another nuclide, or a
    RadionuclideHalfLife off by more than the tolerance of
    :func:`~pipeline.ingest.timing.check_half_life`, is an error unless
    ``overrides.force_nuclide`` (``--force-nuclide``): a wrong nuclide changes
    the dose by the ratio of the energies per decay and of the half-lives
    (Y-90 for Lu-177: a factor of about 6).

    Raises
    ------
    InputError
        Unknown nuclide, contradicting records, no nuclide at all.
    """
    records = [(tp.spect_path, tp.injection) for tp in sessions if tp.injection is not None]
    found = {}
    for path, rec in records:
        if rec.nuclide is not None:
            found.setdefault(resolve_nuclide(rec.nuclide, path), path)
    force = bool(getattr(overrides, "force_nuclide", False))
    stated_by = sources.get("radionuclide", "command line")
    if overrides.radionuclide:
        nuclide = resolve_nuclide(overrides.radionuclide, where)
        for name, path in found.items():
            if name == nuclide:
                continue
            if not force:
                raise InputError(path, f"DICOM says {name}, the {stated_by} says {nuclide}: check which is "
                                 f"right; give --force-nuclide to use {nuclide} anyway")
            warnings.append(f"{path}: DICOM says {name}; {nuclide} ({stated_by}) is used (--force-nuclide)")
    elif len(found) > 1:
        (a, pa), (b, pb) = list(found.items())[:2]
        raise InputError(pb, f"radionuclide {b} contradicts {a} of {pa}; give --nuclide")
    elif found:
        nuclide = next(iter(found))
    else:
        raise InputError(where, "no radionuclide (no RadionuclideCodeSequence and no override); give --nuclide")
    half_life_h = check_half_life(nuclide, None, where)
    for path, rec in records:
        if rec.half_life_h is None:
            continue
        try:
            check_half_life(nuclide, rec.half_life_h, path)
        except InputError as exc:
            if not (overrides.radionuclide and force):
                if overrides.radionuclide:
                    raise InputError(exc.path, f"{exc.problem} (stated by the {stated_by}); give "
                                     f"--force-nuclide to use {nuclide} anyway") from None
                raise
            warnings.append(f"{exc} ({nuclide} kept: --force-nuclide)")
    return nuclide, half_life_h


def _agreed_injection(complete, sessions, warnings):
    """The injection time that the complete records agree on: ``(path, datetime)``.

    Records agree within :data:`INJECTION_AGREEMENT_S`, in UTC when both have
    an offset. Records with the same wall-clock time but different UTC offsets
    (a series written after a daylight-saving switch stamps the injection with
    the new offset) are taken with the offset of the earliest scan, with a
    warning.

    Raises
    ------
    InputError
        Records that contradict each other.
    """
    path0, when = complete[0]
    offsets = set()
    for path, other in complete[1:]:
        if abs(seconds_between(when, other)) <= INJECTION_AGREEMENT_S:
            continue
        if abs(seconds_between(wall_clock(when), wall_clock(other))) > INJECTION_AGREEMENT_S:
            raise InputError(path, f"injection time {other.isoformat()} contradicts "
                             f"{when.isoformat()} of {path0}; give --injection-datetime")
        offsets.update({format_utc_offset(when), format_utc_offset(other)})
    if offsets:
        acquired = {tp.spect_path: wall_clock(tp.acquisition_datetime) for tp in sessions}
        path0, when = min(complete, key=lambda pr: acquired[pr[0]])
        warnings.append(f"{path0}: injection time {wall_clock(when).isoformat()} is stored with different UTC "
                        f"offsets ({', '.join(sorted(offsets))}) by different series (daylight saving?); the "
                        f"offset of the earliest scan ({format_utc_offset(when)}) is used; give "
                        "--injection-datetime with its UTC offset to be sure")
    return path0, when


def resolve_injection(sessions, overrides, where, warnings, sources):
    """Injection date-time and activity; ``sources`` names where each override came from."""
    records = [(tp.spect_path, tp.injection) for tp in sessions if tp.injection is not None]
    if overrides.injection_datetime is not None:
        override_source = sources["injection_datetime"]
        when, source = overrides.injection_datetime, override_source
        for path, rec in records:
            if rec.datetime_is_complete and abs(seconds_between(when, rec.injection_datetime)) > \
                    INJECTION_AGREEMENT_S:
                warnings.append(f"{path}: DICOM injection time {rec.injection_datetime.isoformat()} differs "
                                f"from the {override_source} value {when.isoformat()}, which is used")
                break
    else:
        complete = [(p, r.injection_datetime) for p, r in records if r.datetime_is_complete]
        partial = [(p, r.injection_datetime) for p, r in records
                   if r.injection_datetime is not None and not r.datetime_is_complete]
        if complete:
            path0, when = _agreed_injection(complete, sessions, warnings)
            source = "RadiopharmaceuticalStartDateTime"
        elif partial:
            path0, when = min(partial, key=lambda pr: wall_clock(pr[1]))
            source = "acquisition date + RadiopharmaceuticalStartTime"
            warnings.append(f"{path0}: injection date-time built from a date and a time of day "
                            f"({when.isoformat()}); give --injection-datetime to be sure")
        else:
            raise InputError(where, "missing injection record (no RadiopharmaceuticalStartDateTime/Time); "
                             "give --injection-datetime")
    if overrides.injected_activity_mbq is not None:
        override_source = sources["injected_activity_mbq"]
        activity, activity_source = float(overrides.injected_activity_mbq), override_source
        for path, rec in records:
            if rec.injected_activity_mbq is not None and \
                    abs(rec.injected_activity_mbq / activity - 1.0) > ACTIVITY_AGREEMENT_RTOL:
                warnings.append(f"{path}: DICOM injected activity {rec.injected_activity_mbq:g} MBq differs "
                                f"from the {override_source} value {activity:g} MBq, which is used")
                break
    else:
        values = [(p, r.injected_activity_mbq) for p, r in records if r.injected_activity_mbq is not None]
        if not values:
            raise InputError(where, "missing injected activity (no RadionuclideTotalDose); give --injected-mbq")
        path0, activity = values[0]
        activity_note = next(r.activity_note for p, r in records if p == path0)
        for path, other in values[1:]:
            if abs(other / activity - 1.0) > ACTIVITY_AGREEMENT_RTOL:
                raise InputError(path, f"injected activity {other:g} MBq contradicts {activity:g} MBq of "
                                 f"{path0}; give --injected-mbq")
        activity_source = f"RadionuclideTotalDose: {activity_note}"
    return when, source, activity, activity_source


def check_one_patient(sessions):
    """All DICOM series carry the same PatientID (empty ids are not compared; ids never printed)."""
    first = None
    for tp in sessions:
        for series in (tp.spect, tp.ct):
            if not isinstance(series, DicomSeries):
                continue
            pid = str(series.first.get("PatientID", "") or "")
            if not pid:
                continue
            if first is None:
                first = (pid, series.files[0])
            elif pid != first[0]:
                raise InputError(series.files[0], f"PatientID differs from that of {first[1]}: series of "
                                 "more than one patient; give one patient's scans")
