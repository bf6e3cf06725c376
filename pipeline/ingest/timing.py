"""Injection and acquisition times, injected activity and radionuclide from DICOM.

Date-times carry their UTC offset when one is known (``tzinfo`` set): from a
DICOM DT value's own suffix (``+HHMM``, PS3.5), else from the dataset's
TimezoneOffsetFromUTC (0008,0201), which applies to every DA/TM/DT of that
dataset without its own offset (PS3.3 C.12.1.1.8), and for ISO 8601 strings
from their own offset. Without an offset they are naive local (wall-clock)
times. Differences (:func:`seconds_between`) are taken in UTC when both ends
have an offset, else on the wall clock, to the second. Injected activity is returned in MBq after a magnitude
check (the DICOM dictionary says MBq, the PET module says Bq, vendors write
either). The radionuclide comes from RadionuclideCodeSequence (or an
override) and its half-life, when stored, must agree with ICRP-107.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from pipeline.errors import InputError

__all__ = [
    "InjectionRecord",
    "parse_utc_offset",
    "format_utc_offset",
    "dataset_utc_offset",
    "parse_dicom_datetime",
    "dicom_datetime_with_offset",
    "wall_clock",
    "on_clock_of",
    "utc_offset_remark",
    "parse_iso_datetime",
    "acquisition_datetime",
    "injection_record",
    "activity_mbq_from_dicom",
    "nuclide_from_code_meaning",
    "check_half_life",
    "seconds_between",
    "resolve_nuclide",
]

#: Plausible administered activities: MBq values in [1, 1e5], Bq values in [1e6, 1e11].
MBQ_RANGE = (1.0, 1.0e5)
BQ_RANGE = (1.0e6, 1.0e11)
#: Stored half-lives are rounded by vendors (e.g. Lu-177 6.64-6.65 d); 2 % separates nuclides cleanly.
HALF_LIFE_RTOL = 0.02
#: UTC offsets allowed by DICOM PS3.5 (DT, TimezoneOffsetFromUTC): -1200 to +1400.
UTC_OFFSET_RANGE = (dt.timedelta(hours=-12), dt.timedelta(hours=14))

_ELEMENTS = (
    "H Hydrogen,He Helium,Li Lithium,Be Beryllium,B Boron,C Carbon,N Nitrogen,O Oxygen,F Fluorine,"
    "Ne Neon,Na Sodium,Mg Magnesium,Al Aluminium,Si Silicon,P Phosphorus,S Sulfur,Cl Chlorine,Ar Argon,"
    "K Potassium,Ca Calcium,Sc Scandium,Ti Titanium,V Vanadium,Cr Chromium,Mn Manganese,Fe Iron,"
    "Co Cobalt,Ni Nickel,Cu Copper,Zn Zinc,Ga Gallium,Ge Germanium,As Arsenic,Se Selenium,Br Bromine,"
    "Kr Krypton,Rb Rubidium,Sr Strontium,Y Yttrium,Zr Zirconium,Nb Niobium,Mo Molybdenum,Tc Technetium,"
    "Ru Ruthenium,Rh Rhodium,Pd Palladium,Ag Silver,Cd Cadmium,In Indium,Sn Tin,Sb Antimony,"
    "Te Tellurium,I Iodine,Xe Xenon,Cs Caesium,Ba Barium,La Lanthanum,Ce Cerium,Pr Praseodymium,"
    "Nd Neodymium,Pm Promethium,Sm Samarium,Eu Europium,Gd Gadolinium,Tb Terbium,Dy Dysprosium,"
    "Ho Holmium,Er Erbium,Tm Thulium,Yb Ytterbium,Lu Lutetium,Hf Hafnium,Ta Tantalum,W Tungsten,"
    "Re Rhenium,Os Osmium,Ir Iridium,Pt Platinum,Au Gold,Hg Mercury,Tl Thallium,Pb Lead,Bi Bismuth,"
    "Po Polonium,At Astatine,Rn Radon,Fr Francium,Ra Radium,Ac Actinium,Th Thorium,Pa Protactinium,"
    "U Uranium,Np Neptunium,Pu Plutonium,Am Americium,Cm Curium,Bk Berkelium,Cf Californium,"
    "Es Einsteinium,Fm Fermium"
)


def _element_symbols() -> dict:
    table = {}
    for pair in _ELEMENTS.split(","):
        symbol, name = pair.split()
        table[name.lower()] = symbol
        table[symbol.lower()] = symbol
    table["cesium"] = "Cs"
    table["aluminum"] = "Al"
    table["sulphur"] = "S"
    return table


@dataclass(frozen=True)
class InjectionRecord:
    """What one series says about the administration.

    Attributes
    ----------
    injection_datetime : datetime.datetime or None
        Local time of injection; timezone-aware when a UTC offset is known
        (DT suffix, else the dataset's TimezoneOffsetFromUTC).
    datetime_is_complete : bool
        True when read from RadiopharmaceuticalStartDateTime; False when built
        from a date of the series plus RadiopharmaceuticalStartTime.
    injected_activity_mbq : float or None
    nuclide : str or None
        ICRP-107 spelling, e.g. ``"Lu-177"``.
    half_life_h : float or None
        RadionuclideHalfLife as stored, in hours.
    warnings : list of str
    """

    injection_datetime: dt.datetime | None
    datetime_is_complete: bool
    injected_activity_mbq: float | None
    nuclide: str | None
    half_life_h: float | None
    warnings: list = field(default_factory=list)
    activity_note: str | None = None


def _tm(text: str) -> dt.time:
    text = text.strip().replace(":", "")
    m = re.fullmatch(r"(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?", text)
    if not m:
        raise ValueError(f"bad DICOM time {text!r}")
    hh, mm, ss, frac = m.groups()
    micro = int((frac or "0").ljust(6, "0"))
    return dt.time(int(hh), int(mm or 0), int(ss or 0), micro)


def _da(text: str) -> dt.date:
    text = text.strip().replace(".", "").replace("-", "")
    return dt.datetime.strptime(text, "%Y%m%d").date()


def parse_utc_offset(text) -> dt.timedelta:
    """A DICOM UTC offset ``+HHMM`` / ``-HHMM`` (PS3.5 DT suffix, TimezoneOffsetFromUTC) as a timedelta.

    Raises
    ------
    ValueError
        Not of that form, minutes above 59, or outside -1200 to +1400.
    """
    m = re.fullmatch(r"([+-])(\d{2})(\d{2})", str(text).strip())
    if not m or int(m.group(3)) > 59:
        raise ValueError(f"bad UTC offset {str(text)!r} (expected +HHMM or -HHMM)")
    sign = -1 if m.group(1) == "-" else 1
    offset = sign * dt.timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
    if not UTC_OFFSET_RANGE[0] <= offset <= UTC_OFFSET_RANGE[1]:
        raise ValueError(f"bad UTC offset {str(text)!r} (outside -1200 to +1400)")
    return offset


def format_utc_offset(value) -> str | None:
    """``"+0100"`` for a timedelta or an aware datetime; ``None`` for ``None`` or a naive datetime."""
    if isinstance(value, dt.datetime):
        value = value.utcoffset()
    if value is None:
        return None
    minutes = int(value.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def dataset_utc_offset(ds, path) -> dt.timedelta | None:
    """TimezoneOffsetFromUTC (0008,0201) of ``ds``; ``None`` when absent or empty.

    Raises
    ------
    InputError
        A malformed value, naming ``path`` and the value.
    """
    value = ds.get("TimezoneOffsetFromUTC")
    if value is None or not str(value).strip():
        return None
    try:
        return parse_utc_offset(value)
    except ValueError:
        raise InputError(path, f"TimezoneOffsetFromUTC {str(value)!r} is not a UTC offset (+HHMM or -HHMM, "
                         "-1200 to +1400)") from None


def dicom_datetime_with_offset(dt_text=None, date_text=None, time_text=None,
                               utc_offset: dt.timedelta | None = None) -> dt.datetime | None:
    """A datetime from a DICOM DT value, or from a DA plus a TM value, with its UTC offset.

    The offset is the DT value's own suffix (``+0100``), else ``utc_offset``
    (the dataset's TimezoneOffsetFromUTC, see :func:`dataset_utc_offset`).
    The result is timezone-aware when an offset is known, naive otherwise.
    Returns ``None`` when nothing is given.

    Raises
    ------
    ValueError
        When a value (or its offset) is present but malformed.
    """
    own = None
    if dt_text is not None and str(dt_text).strip():
        text = str(dt_text).strip()
        m = re.fullmatch(r"(\d{8})(\d{2,6}(?:\.\d{1,6})?)?([+-].*)?", text)
        if not m:
            raise ValueError(f"bad DICOM date-time {text!r}")
        if m.group(3) is not None:
            try:
                own = parse_utc_offset(m.group(3))
            except ValueError as exc:
                raise ValueError(f"{exc} in DICOM date-time {text!r}") from None
        date = _da(m.group(1))
        time = _tm(m.group(2)) if m.group(2) else dt.time(0)
        value = dt.datetime.combine(date, time)
    elif date_text is not None and str(date_text).strip() and time_text is not None and str(time_text).strip():
        value = dt.datetime.combine(_da(str(date_text)), _tm(str(time_text)))
    else:
        return None
    offset = own if own is not None else utc_offset
    return value if offset is None else value.replace(tzinfo=dt.timezone(offset))


def parse_dicom_datetime(dt_text=None, date_text=None, time_text=None) -> dt.datetime | None:
    """A naive (wall-clock) datetime from a DICOM DT value, or from a DA plus a TM value.

    A DT suffix (``+0100``) is checked and dropped; use
    :func:`dicom_datetime_with_offset` to keep it. Returns ``None`` when
    nothing is given.

    Raises
    ------
    ValueError
        When a value is present but malformed.
    """
    return wall_clock(dicom_datetime_with_offset(dt_text, date_text, time_text))


def parse_iso_datetime(text, where) -> dt.datetime:
    """Parse an ISO 8601 date-time (manifest / command line).

    Timezone-aware when the text has a UTC offset (``2026-03-23T09:00:00+01:00``
    or ``Z``), a naive local time otherwise.

    Raises
    ------
    InputError
        Unreadable text, or an offset outside -12:00 to +14:00, naming ``where``.
    """
    if isinstance(text, dt.datetime):  # YAML reads unquoted timestamps itself
        value = text
    else:
        try:
            value = dt.datetime.fromisoformat(str(text).strip())
        except ValueError:
            raise InputError(where, f"cannot read date-time {text!r}; use ISO 8601, e.g. 2026-01-05T09:00:00 "
                             "or 2026-01-05T09:00:00+01:00") from None
    offset = value.utcoffset()
    if offset is not None and not UTC_OFFSET_RANGE[0] <= offset <= UTC_OFFSET_RANGE[1]:
        raise InputError(where, f"date-time {str(text)!r} has a UTC offset outside -12:00 to +14:00")
    return value


def wall_clock(value: dt.datetime | None) -> dt.datetime | None:
    """``value`` as a naive local (wall-clock) datetime: its UTC offset dropped, the clock time kept."""
    return None if value is None else value.replace(tzinfo=None)


def on_clock_of(value: dt.datetime, reference: dt.datetime) -> dt.datetime:
    """``value`` as a naive time on the wall clock of ``reference``.

    When both carry a UTC offset, ``value`` is converted to the offset of
    ``reference``; otherwise its own wall-clock time is returned.
    """
    if value.utcoffset() is not None and reference.utcoffset() is not None:
        return value.astimezone(reference.tzinfo).replace(tzinfo=None)
    return wall_clock(value)


def seconds_between(start: dt.datetime, end: dt.datetime) -> int:
    """Whole seconds from ``start`` to ``end`` (fractions of a second dropped, towards -inf).

    In UTC when both carry a UTC offset; otherwise the wall-clock difference
    (a lone offset is ignored: both are taken as the same local clock).
    """
    if start.utcoffset() is None or end.utcoffset() is None:
        start, end = wall_clock(start), wall_clock(end)
    return int((end - start).total_seconds() // 1)


def utc_offset_remark(injection: dt.datetime, acquisition: dt.datetime, time_point: str) -> tuple:
    """What to say about the UTC offsets of an injection and a scan time.

    Returns
    -------
    warning : str or None
        When exactly one of the two has an offset (the elapsed time is then
        the wall-clock difference).
    note : str or None
        When both have offsets and they differ (the elapsed time is then
        taken in UTC, e.g. across a daylight-saving switch).
    """
    inj, acq = format_utc_offset(injection), format_utc_offset(acquisition)
    if (inj is None) != (acq is None):
        return (f"injection time {injection.isoformat()} has {'no UTC offset' if inj is None else inj}, scan "
                f"{time_point} ({acquisition.isoformat()}) has {'no UTC offset' if acq is None else acq}: "
                "times taken as the same local clock"), None
    if inj is not None and inj != acq:
        return None, (f"scan {time_point}: UTC offsets differ ({inj} at injection, {acq} at the scan; daylight "
                      "saving?): elapsed time from UTC")
    return None, None


def acquisition_datetime(headers, path) -> tuple[dt.datetime, list]:
    """Acquisition start of a series: the earliest over its files.

    Uses AcquisitionDateTime, else AcquisitionDate + AcquisitionTime, else
    SeriesDate + SeriesTime (with a warning); each with its UTC offset when
    known (DT suffix, else the file's TimezoneOffsetFromUTC).

    Returns
    -------
    datetime.datetime, list of str (warnings)
        The datetime is timezone-aware when its file gives a UTC offset.

    Raises
    ------
    InputError
        No time at all, or a malformed date, time or offset.
    """
    found, warnings, used_series = [], [], False
    for ds in headers:
        offset = dataset_utc_offset(ds, path)
        try:
            value = dicom_datetime_with_offset(ds.get("AcquisitionDateTime"), ds.get("AcquisitionDate"),
                                               ds.get("AcquisitionTime"), offset)
            if value is None:
                value = dicom_datetime_with_offset(None, ds.get("SeriesDate"), ds.get("SeriesTime"), offset)
                used_series = used_series or value is not None
        except ValueError as exc:
            raise InputError(path, str(exc)) from None
        if value is not None:
            found.append(value)
    if not found:
        raise InputError(path, "no acquisition date and time (AcquisitionDateTime, AcquisitionDate/Time "
                         "or SeriesDate/Time)")
    if used_series:
        warnings.append(f"{path}: no acquisition date-time; used SeriesDate/SeriesTime")
    if all(v.utcoffset() is not None for v in found):
        return min(found), warnings
    return min(found, key=wall_clock), warnings


def activity_mbq_from_dicom(value, path) -> tuple[float, str]:
    """Injected activity in MBq from RadionuclideTotalDose of unknown unit.

    Values in [1, 1e5] are taken as MBq, values in [1e6, 1e11] as Bq;
    anything else is an error, as no therapy or diagnostic activity is there.

    Returns
    -------
    activity_mbq : float
    note : str
        How the value was read.
    """
    v = float(value)
    if MBQ_RANGE[0] <= v <= MBQ_RANGE[1]:
        return v, f"RadionuclideTotalDose {v:g} read as MBq (magnitude check)"
    if BQ_RANGE[0] <= v <= BQ_RANGE[1]:
        return v / 1e6, f"RadionuclideTotalDose {v:g} read as Bq (magnitude check) = {v / 1e6:g} MBq"
    raise InputError(path, f"RadionuclideTotalDose {v:g} is neither a plausible MBq value "
                     f"({MBQ_RANGE[0]:g}-{MBQ_RANGE[1]:g}) nor a plausible Bq value "
                     f"({BQ_RANGE[0]:g}-{BQ_RANGE[1]:g}); give --injected-mbq")


def nuclide_from_code_meaning(text: str) -> str | None:
    """ICRP-107 spelling from a code meaning such as ``^177^Lutetium``, ``Lutetium^177^``,
    ``177Lu``, ``Lu-177``, ``Yttrium-90``, ``Tc-99m``. ``None`` when it cannot be parsed."""
    if not text:
        return None
    cleaned = str(text).replace("^", " ").replace("-", " ").replace("_", " ").strip()
    mass = re.search(r"(\d{1,3})\s*(m\d?)?(?!\d)", cleaned, flags=re.IGNORECASE)
    if not mass:
        return None
    meta = (mass.group(2) or "").lower()
    table = _element_symbols()
    symbol = None
    for word in re.findall(r"[A-Za-z]+", re.sub(r"\d+", " ", cleaned)):
        w = word.lower()
        if meta and w.startswith("m") and w[1:] in table:  # "99mTc"
            w = w[1:]
        if w in table:
            symbol = table[w]
            break
    if symbol is None:
        return None
    return f"{symbol}-{int(mass.group(1))}{meta}"


def check_half_life(nuclide: str, half_life_h: float | None, path) -> float:
    """ICRP-107 half-life (h) of ``nuclide``; error when a stored half-life contradicts it.

    Raises
    ------
    InputError
        Unknown nuclide, or stored half-life off by more than :data:`HALF_LIFE_RTOL`.
    """
    from kernels.decay import UnknownNuclideError, load_decay

    try:
        reference = load_decay(nuclide).half_life_h
    except UnknownNuclideError as exc:
        raise InputError(path, f"unknown radionuclide: {exc}") from None
    if half_life_h is not None and abs(half_life_h / reference - 1.0) > HALF_LIFE_RTOL:
        raise InputError(path, f"RadionuclideHalfLife {half_life_h:.4g} h contradicts {nuclide} "
                         f"(ICRP-107: {reference:.4g} h); check the nuclide or give --nuclide")
    return reference


def resolve_nuclide(name: str, path) -> str:
    """Canonical ICRP-107 spelling of ``name``; InputError when unknown."""
    from kernels.decay import UnknownNuclideError, load_decay

    try:
        return load_decay(name).nuclide
    except UnknownNuclideError as exc:
        raise InputError(path, f"unknown radionuclide: {exc}") from None


def injection_record(ds, path) -> InjectionRecord:
    """What the header ``ds`` of ``path`` says about the injection (fields may be ``None``)."""
    warnings = []
    seq = ds.get("RadiopharmaceuticalInformationSequence")
    if not seq:
        return InjectionRecord(None, False, None, None, None, warnings)
    item = seq[0]
    complete = True
    offset = dataset_utc_offset(ds, path)
    try:
        when = dicom_datetime_with_offset(item.get("RadiopharmaceuticalStartDateTime"), utc_offset=offset)
        if when is None and item.get("RadiopharmaceuticalStartTime"):
            date = ds.get("AcquisitionDate") or ds.get("SeriesDate") or ds.get("StudyDate")
            if not date and ds.get("AcquisitionDateTime"):
                date = str(ds.get("AcquisitionDateTime"))[:8]
            when = dicom_datetime_with_offset(None, date, item.get("RadiopharmaceuticalStartTime"),
                                              utc_offset=offset)
            complete = False
            if when is not None:
                warnings.append(f"{path}: no RadiopharmaceuticalStartDateTime; injection date taken from the "
                                "acquisition date plus RadiopharmaceuticalStartTime")
    except ValueError as exc:
        raise InputError(path, f"injection time: {exc}") from None
    activity, note = None, None
    if item.get("RadionuclideTotalDose") not in (None, ""):
        activity, note = activity_mbq_from_dicom(item.get("RadionuclideTotalDose"), path)
    nuclide = None
    code = item.get("RadionuclideCodeSequence")
    if code:
        meaning = str(code[0].get("CodeMeaning", ""))
        nuclide = nuclide_from_code_meaning(meaning)
        if nuclide is None:
            raise InputError(path, f"unknown radionuclide code {meaning!r}; give --nuclide")
    half_life_h = None
    if item.get("RadionuclideHalfLife") not in (None, ""):
        half_life_h = float(item.get("RadionuclideHalfLife")) / 3600.0
    return InjectionRecord(when, complete and when is not None, activity, nuclide, half_life_h, warnings, note)
