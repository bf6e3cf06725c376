"""Injection and acquisition times, injected activity and radionuclide from DICOM.

All date-times are naive local times, as DICOM stores them; differences are
taken to the second. Injected activity is returned in MBq after a magnitude
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
    "parse_dicom_datetime",
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
        Local time of injection.
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


def parse_dicom_datetime(dt_text=None, date_text=None, time_text=None) -> dt.datetime | None:
    """A naive datetime from a DICOM DT value, or from a DA plus a TM value.

    Timezone suffixes (``+0100``) are dropped: every time of a patient comes
    from the same site and clock. Returns ``None`` when nothing is given.

    Raises
    ------
    ValueError
        When a value is present but malformed.
    """
    if dt_text is not None and str(dt_text).strip():
        text = re.sub(r"[+-]\d{4}$", "", str(dt_text).strip())
        m = re.fullmatch(r"(\d{8})(\d{2,6}(?:\.\d{1,6})?)?", text)
        if not m:
            raise ValueError(f"bad DICOM date-time {dt_text!r}")
        date = _da(m.group(1))
        time = _tm(m.group(2)) if m.group(2) else dt.time(0)
        return dt.datetime.combine(date, time)
    if date_text is not None and str(date_text).strip() and time_text is not None and str(time_text).strip():
        return dt.datetime.combine(_da(str(date_text)), _tm(str(time_text)))
    return None


def parse_iso_datetime(text, where) -> dt.datetime:
    """Parse an ISO 8601 local date-time (manifest / command line); timezone dropped."""
    if isinstance(text, dt.datetime):
        return text.replace(tzinfo=None)
    try:
        return dt.datetime.fromisoformat(str(text).strip()).replace(tzinfo=None)
    except ValueError:
        raise InputError(where, f"cannot read date-time {text!r}; use ISO 8601, e.g. 2026-01-05T09:00:00") from None


def seconds_between(start: dt.datetime, end: dt.datetime) -> int:
    """Whole seconds from ``start`` to ``end`` (fractions of a second dropped, towards -inf)."""
    return int((end - start).total_seconds() // 1)


def acquisition_datetime(headers, path) -> tuple[dt.datetime, list]:
    """Acquisition start of a series: the earliest over its files.

    Uses AcquisitionDateTime, else AcquisitionDate + AcquisitionTime, else
    SeriesDate + SeriesTime (with a warning).

    Returns
    -------
    datetime.datetime, list of str (warnings)
    """
    found, warnings, used_series = [], [], False
    for ds in headers:
        try:
            value = parse_dicom_datetime(ds.get("AcquisitionDateTime"), ds.get("AcquisitionDate"),
                                         ds.get("AcquisitionTime"))
            if value is None:
                value = parse_dicom_datetime(None, ds.get("SeriesDate"), ds.get("SeriesTime"))
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
    return min(found), warnings


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
    try:
        when = parse_dicom_datetime(item.get("RadiopharmaceuticalStartDateTime"))
        if when is None and item.get("RadiopharmaceuticalStartTime"):
            date = ds.get("AcquisitionDate") or ds.get("SeriesDate") or ds.get("StudyDate")
            if not date and ds.get("AcquisitionDateTime"):
                date = str(ds.get("AcquisitionDateTime"))[:8]
            when = parse_dicom_datetime(None, date, item.get("RadiopharmaceuticalStartTime"))
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
