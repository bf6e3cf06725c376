"""Which BED values the report may show: only where the LQ parameters belong to that organ.

The dose stage computes BED for every structure in ``dose/bed.csv``, using the kidney's
linear-quadratic parameters (alpha/beta 2.6 Gy, repair half-time 2.8 h) for any organ the user
gave no parameters for. A BED of the liver computed with kidney parameters is not a number a
physicist can sign, so the report shows BED for a structure only when

- the structure's own parameters are recorded by the dose stage (``settings.lq_by_organ`` in
  ``dose/dose_provenance.json``): the kidneys always (alpha/beta 2.6 Gy, T_rep 2.8 h, from the
  project's physics notes, section 4; BED in the form of MIRD Pamphlet 20), the marrow VOI and
  other organs only when the workflow configuration supplies them (``dose.lq.<organ>``); and
- the row of ``bed.csv`` was computed with exactly those parameters.

Every structure whose BED is withheld is named in a note, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .inputs import as_float, organ_label, read_csv, read_json

__all__ = ["BedEntry", "eligible_bed", "KIDNEY_NAMES", "MARROW_NAMES"]

KIDNEY_NAMES = ("kidney_left", "kidney_right", "kidneys")
MARROW_NAMES = ("red_marrow", "marrow_L2L4")


@dataclass(frozen=True)
class BedEntry:
    """A BED value the report may print.

    Attributes
    ----------
    bed_gy, eqd2_gy : float or None
        Biologically effective dose and EQD2, Gy.
    alpha_beta_gy : float
        alpha/beta used, Gy.
    repair_half_time_h : float
        Repair half-time used, h.
    origin : str
        ``"kidney (sourced)"`` or ``"user-supplied"``.
    """

    bed_gy: float
    eqd2_gy: float | None
    alpha_beta_gy: float
    repair_half_time_h: float
    origin: str


def _recorded_parameters(prov) -> dict | None:
    """Structure name -> (alpha/beta Gy, T_rep h) the dose stage recorded; None when not recorded."""
    settings = prov.get("settings") if isinstance(prov, dict) else None
    by_organ = settings.get("lq_by_organ") if isinstance(settings, dict) else None
    if not isinstance(by_organ, dict):
        return None
    out = {}
    for name, par in by_organ.items():
        if isinstance(par, dict):
            ab, tr = as_float(par.get("alpha_beta_gy")), as_float(par.get("repair_half_time_h"))
            if ab is not None and tr is not None:
                out[name] = (ab, tr)
    return out


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def eligible_bed(patient_dir) -> tuple[dict, list]:
    """BED values the report may show, and notes on every value it withholds.

    Parameters
    ----------
    patient_dir : path
        ``results/<patient>``.

    Returns
    -------
    entries : dict
        Structure name of ``bed.csv`` -> :class:`BedEntry`.
    notes : list of str
        One sentence per reason a BED is not shown.
    """
    pdir = Path(patient_dir)
    rows, why = read_csv(pdir / "dose" / "bed.csv")
    if rows is None:
        return {}, [f"BED: {why}"]
    prov, _ = read_json(pdir / "dose" / "dose_provenance.json")
    recorded = _recorded_parameters(prov)
    entries, no_params, mismatched = {}, [], []
    for row in rows:
        name = str(row.get("name", ""))
        bed = as_float(row.get("bed_gy"))
        ab, tr = as_float(row.get("alpha_beta_gy")), as_float(row.get("repair_half_time_h"))
        if bed is None or ab is None or tr is None:
            continue
        if recorded is None:
            params = (ab, tr) if name in KIDNEY_NAMES else None  # older output: only the kidneys are safe
        else:
            params = recorded.get(name)
            if params is None and name in MARROW_NAMES:
                params = next((recorded[m] for m in MARROW_NAMES if m in recorded), None)
        if params is None:
            no_params.append(name)
            continue
        if not (_same(params[0], ab) and _same(params[1], tr)):
            mismatched.append(name)
            continue
        origin = "kidney (sourced)" if name in KIDNEY_NAMES else "user-supplied"
        entries[name] = BedEntry(bed, as_float(row.get("eqd2_gy")), ab, tr, origin)
    notes = []
    if no_params:
        notes.append("BED not shown for " + ", ".join(organ_label(n) for n in no_params)
                     + ": no linear-quadratic parameters of their own were given (the dose stage used the "
                       "kidney's; set dose.lq.<organ> in the workflow configuration to compute them).")
    if mismatched:
        notes.append("BED not shown for " + ", ".join(organ_label(n) for n in mismatched)
                     + ": dose/bed.csv was computed with parameters other than those recorded for the organ.")
    return entries, notes
