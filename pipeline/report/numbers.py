"""Numbers and values as a physicist reads them: digits matched to the uncertainty, no raw structures.

Rules (GUM, JCGM 100:2008, section 7.2.6, and common practice in dosimetry reports):

- a standard uncertainty is printed with two significant digits and the value is rounded to the
  same decimal place (``3.05 +- 0.15``);
- a value without a stated uncertainty is printed with three significant digits (the precision
  of the inputs: activity calibration, segmentation and kernels are not known better than ~1 %);
- integers stay integers; dictionaries and lists become readable text (``key: value; ...``),
  never a Python or JSON literal.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["decimals_for_uncertainty", "fmt_sig", "fmt_fixed", "fmt_with_uncertainty", "plain_text",
           "typographic", "key_label", "PLUS_MINUS"]

PLUS_MINUS = "\u00b1"


def _finite(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(float(x))


def decimals_for_uncertainty(sd: float, digits: int = 2) -> int:
    """Decimal places that show ``sd`` with ``digits`` significant digits.

    Parameters
    ----------
    sd : float
        A standard uncertainty (any unit), > 0.
    digits : int
        Significant digits of the uncertainty (2 by GUM practice).

    Returns
    -------
    int
        Number of decimal places (negative: round to tens, hundreds, ...).
    """
    sd = abs(float(sd))
    if sd == 0 or not math.isfinite(sd):
        raise ValueError("an uncertainty must be finite and non-zero")
    places = digits - 1 - math.floor(math.log10(sd))
    # rounding may carry into the next decade (0.0996 -> 0.10): count the digits of the rounded value
    rounded = round(sd, places)
    return digits - 1 - math.floor(math.log10(rounded))


def fmt_fixed(x: float, places: int) -> str:
    """``x`` rounded to ``places`` decimal places (negative: to tens, hundreds, ...), as text."""
    if places > 0:
        text = f"{x:.{places}f}"
    else:
        text = f"{round(x, places):.0f}"
    if text.startswith("-") and not text.strip("-0."):
        return text[1:]  # -0.00 -> 0.00: a value that rounds to zero has no sign
    return text


def fmt_sig(x, digits: int = 3) -> str:
    """``x`` with ``digits`` significant digits, in positional notation.

    Parameters
    ----------
    x : float
        The value (any unit).
    digits : int
        Significant digits (3 when no uncertainty is known).

    Returns
    -------
    str
        E.g. ``fmt_sig(3.05307) == "3.05"``, ``fmt_sig(22704.6) == "22700"``,
        ``fmt_sig(0.000123) == "0.000123"``; integers as integers, non-finite numbers as text.
    """
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        return plain_text(x)
    if isinstance(x, numbers.Integral):
        return str(int(x))
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    if abs(x) < 1e-4 or abs(x) >= 1e7:
        return f"{x:.{digits - 1}e}"
    places = digits - 1 - math.floor(math.log10(abs(x)))
    rounded = round(x, places)
    if rounded != 0 and math.floor(math.log10(abs(rounded))) != math.floor(math.log10(abs(x))):
        places -= 1  # 9.996 -> 10.0, not 10.00
    return fmt_fixed(x, places)


def fmt_with_uncertainty(value, sd, digits: int = 2) -> tuple[str, str | None]:
    """``value`` and its standard uncertainty ``sd``, both rounded to the uncertainty's digits.

    Parameters
    ----------
    value : float
        The estimate (any unit).
    sd : float or None
        Its standard uncertainty in the same unit; ``None``, zero or non-finite: unknown.
    digits : int
        Significant digits of the uncertainty.

    Returns
    -------
    (str, str or None)
        The value text and the uncertainty text (``None`` when the uncertainty is unknown, in
        which case the value has three significant digits).
    """
    if not _finite(value):
        return plain_text(value), None
    if not _finite(sd) or float(sd) == 0:
        return fmt_sig(float(value)), None
    places = decimals_for_uncertainty(float(sd), digits)
    return fmt_fixed(float(value), places), fmt_fixed(abs(float(sd)), places)


def typographic(text: str) -> str:
    """Prose with typographic apostrophes and quotes instead of the ASCII ones."""
    out, opened = [], False
    for i, ch in enumerate(text):
        if ch == "'":
            prev = text[i - 1] if i else " "
            if prev.isalnum():
                out.append("\u2019")  # apostrophe or closing quote after a word
            else:
                out.append("\u2018")
        elif ch == '"':
            out.append("\u201d" if opened else "\u201c")
            opened = not opened
        else:
            out.append(ch)
    return "".join(out)


#: Unit suffixes of the project's snake_case keys, longest first, and how a header writes them.
_UNIT_SUFFIXES = (("_mbq_h_per_ml", "MBq h/mL"), ("_g_per_ml", "g/mL"), ("_gy_per_gbq", "Gy/GBq"),
                  ("_mbq_h", "MBq h"), ("_per_h", "1/h"), ("_mbq", "MBq"), ("_gbq", "GBq"), ("_gy", "Gy"),
                  ("_mm", "mm"), ("_ml", "mL"), ("_kg", "kg"), ("_mev", "MeV"), ("_g", "g"), ("_h", "h"),
                  ("_s", "s"), ("_j", "J"))


def key_label(name) -> str:
    """A snake_case key as a label with its unit: ``kidney_dose_limit_gy`` -> ``kidney dose limit (Gy)``."""
    text = str(name)
    for suffix, unit in _UNIT_SUFFIXES:
        if text.lower().endswith(suffix) and len(text) > len(suffix):
            return text[: -len(suffix)].replace("_", " ") + f" ({unit})"
    return text.replace("_", " ")


_key = key_label


def plain_text(value) -> str:
    """Any value as readable text, never a Python or JSON literal.

    Parameters
    ----------
    value : object
        None, bool, number, text, list or mapping (nested allowed).

    Returns
    -------
    str
        ``None`` as a dash, booleans as yes/no, floats with three significant digits, lists joined
        by commas, mappings as ``key: value; key: value`` (nested in parentheses), text with
        typographic quotes.
    """
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Real):
        return fmt_sig(value)
    if isinstance(value, str):
        return typographic(value)
    if isinstance(value, dict):
        parts = []
        for key, item in value.items():
            text = plain_text(item)
            if isinstance(item, dict) and item:
                text = f"({text})"
            parts.append(f"{_key(key)}: {text}")
        return "; ".join(parts) if parts else "\u2013"
    if isinstance(value, (list, tuple)):
        return ", ".join(plain_text(v) for v in value) if value else "\u2013"
    return typographic(str(value))
