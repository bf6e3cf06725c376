"""Plausibility gates shared by the stages: one record per check, pass / warn / fail.

A gate is a list of checks. Each check records its name, the measured value and
its unit, the range expected for a physically possible input, where that range
comes from, and a status. A stage writes the list into its JSON output (key
``qc``) and stops with :class:`pipeline.errors.InputError` at the first failed
check (one line naming the file and the problem), before anything is published.

Statuses: ``pass`` (inside the expected range), ``warn`` (outside the range that
is usual, inside the range that is possible; the run goes on, the warning is
recorded and printed), ``fail`` (physically impossible or certainly broken
input; the patient stops).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .errors import InputError

__all__ = ["Check", "check_upper", "check_lower", "Gate"]

STATUSES = ("pass", "warn", "fail")


@dataclass(frozen=True)
class Check:
    """One plausibility check.

    Attributes
    ----------
    name : str
        Short identifier, e.g. ``"activity_in_fov_over_injected"``.
    value : float or int or str or None
        What was measured.
    unit : str
        Unit of ``value`` (``"1"`` for ratios, ``"%"``, ``"h"``, ...).
    expected : str
        The range that passes, e.g. ``"<= 1.05 (warn above), <= 1.20 (fail above)"``.
    source : str
        Why this range: the physics or the measurement uncertainty behind it.
    status : {"pass", "warn", "fail"}
    subject : str
        What was checked (a time point, an organ, a file), for the message.
    path : str or None
        The file the check is about (named in a failure).
    """

    name: str
    value: object
    unit: str
    expected: str
    source: str
    status: str
    subject: str = ""
    path: str | None = None

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    def describe(self) -> str:
        """One sentence: subject, check, value, expected range."""
        value = f"{self.value:.4g}" if isinstance(self.value, float) else str(self.value)
        unit = "" if self.unit in ("", "1") else f" {self.unit}"
        subject = f"{self.subject}: " if self.subject else ""
        return f"{subject}{self.name} = {value}{unit} (expected {self.expected}; {self.source})"

    def to_dict(self) -> dict:
        out = asdict(self)
        if isinstance(self.value, float) and not math.isfinite(self.value):
            out["value"] = str(self.value)
        return out


def check_upper(name: str, value: float, unit: str, warn_above: float | None, fail_above: float, source: str,
                subject: str = "", path=None) -> Check:
    """A check that passes up to ``warn_above``, warns up to ``fail_above`` and fails beyond.

    A non-finite ``value`` fails.
    """
    value = float(value)
    if not math.isfinite(value) or value > fail_above:
        status = "fail"
    elif warn_above is not None and value > warn_above:
        status = "warn"
    else:
        status = "pass"
    expected = (f"<= {fail_above:g}" if warn_above is None
                else f"<= {warn_above:g} (warn above), <= {fail_above:g} (fail above)")
    return Check(name, value, unit, expected, source, status, subject, None if path is None else str(path))


def check_lower(name: str, value: float, unit: str, warn_below: float | None, fail_below: float, source: str,
                subject: str = "", path=None) -> Check:
    """A check that fails below ``fail_below``, warns below ``warn_below`` and passes above.

    A non-finite ``value`` fails.
    """
    value = float(value)
    if not math.isfinite(value) or value < fail_below:
        status = "fail"
    elif warn_below is not None and value < warn_below:
        status = "warn"
    else:
        status = "pass"
    expected = (f">= {fail_below:g}" if warn_below is None
                else f">= {warn_below:g} (warn below), >= {fail_below:g} (fail below)")
    return Check(name, value, unit, expected, source, status, subject, None if path is None else str(path))


class Gate:
    """The checks of one stage run.

    Parameters
    ----------
    default_path : path, optional
        File named in a failure when a check names none.
    """

    def __init__(self, default_path=None):
        self.checks: list[Check] = []
        self.default_path = None if default_path is None else str(default_path)

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    def extend(self, checks) -> None:
        for c in checks:
            self.add(c)

    @property
    def warnings(self) -> list[str]:
        """One line per warned check."""
        return [c.describe() for c in self.checks if c.status == "warn"]

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    def to_list(self) -> list[dict]:
        return [c.to_dict() for c in self.checks]

    def summary(self) -> dict:
        """Counts of pass / warn / fail."""
        return {s: sum(c.status == s for c in self.checks) for s in STATUSES}

    def raise_on_fail(self, hint: str = "") -> None:
        """Raise :class:`InputError` naming the file of the first failed check.

        Parameters
        ----------
        hint : str
            Appended to the message (e.g. how to override a check).
        """
        bad = self.failures
        if not bad:
            return
        first = bad[0]
        more = f" (and {len(bad) - 1} more failed check(s))" if len(bad) > 1 else ""
        raise InputError(first.path or self.default_path, f"implausible input: {first.describe()}{more}{hint}")
