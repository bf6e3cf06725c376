"""Pair each SPECT series with the CT of the same session.

A CT pairs with a SPECT when they share the Frame of Reference UID (same
patient position on the same table); among several, the CT acquired closest
in time wins. Without a shared frame of reference, a CT of the same study
acquired within :data:`MAX_UNSHARED_GAP_MIN` minutes is accepted with a
warning. Otherwise the SPECT has no CT and that is an error.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pipeline.errors import InputError

__all__ = ["Pairing", "pair_spect_with_ct", "MAX_UNSHARED_GAP_MIN"]

#: Largest CT-SPECT gap (min) accepted when the Frame of Reference UIDs differ.
MAX_UNSHARED_GAP_MIN = 30.0


@dataclass(frozen=True)
class Pairing:
    """The CT chosen for one SPECT.

    Attributes
    ----------
    ct_index : int
        Index into the list of CT candidates.
    method : str
        ``"frame_of_reference"`` or ``"study_and_time"``.
    gap_min : float or None
        CT acquisition minus SPECT acquisition, minutes (``None`` when the CT has no time).
    warning : str or None
    """

    ct_index: int
    method: str
    gap_min: float | None
    warning: str | None = None


def _gap_min(ct_time, spect_time):
    if ct_time is None or spect_time is None:
        return None
    return (ct_time - spect_time).total_seconds() / 60.0


def pair_spect_with_ct(spect, spect_time: dt.datetime | None, cts, ct_times) -> Pairing:
    """Choose the CT for ``spect``.

    Parameters
    ----------
    spect : DicomSeries
    spect_time : datetime.datetime or None
    cts : sequence of DicomSeries
    ct_times : sequence of (datetime.datetime or None)

    Raises
    ------
    InputError
        No CT shares the SPECT's frame of reference and none of its study is close in time.
    """
    for_uid = spect.frame_of_reference_uid

    def closeness(n):
        gap = _gap_min(ct_times[n], spect_time)
        return float("inf") if gap is None else abs(gap)

    same_for = [n for n, ct in enumerate(cts) if for_uid and ct.frame_of_reference_uid == for_uid]
    if same_for:
        best = min(same_for, key=closeness)
        return Pairing(best, "frame_of_reference", _gap_min(ct_times[best], spect_time))
    study = str(spect.first.get("StudyInstanceUID", ""))
    same_study = [n for n, ct in enumerate(cts)
                  if study and str(ct.first.get("StudyInstanceUID", "")) == study
                  and closeness(n) <= MAX_UNSHARED_GAP_MIN]
    if same_study:
        best = min(same_study, key=closeness)
        gap = _gap_min(ct_times[best], spect_time)
        return Pairing(best, "study_and_time", gap,
                       f"{spect.files[0]}: no CT shares the SPECT's Frame of Reference UID; paired with the CT "
                       f"of the same study acquired {abs(gap):.1f} min apart ({cts[best].files[0]}); check the "
                       "registration")
    raise InputError(spect.files[0], "SPECT without a CT: no CT series shares its Frame of Reference UID "
                     f"or was acquired within {MAX_UNSHARED_GAP_MIN:g} min in the same study "
                     f"({len(cts)} CT series found)")
