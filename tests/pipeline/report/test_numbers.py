"""Digits matched to the uncertainty, three significant digits otherwise, never a raw structure."""

from __future__ import annotations

import math

import pytest

from pipeline.report.numbers import decimals_for_uncertainty, fmt_sig, fmt_with_uncertainty, plain_text


@pytest.mark.parametrize("value, sd, expected", [
    (3.05307, 0.151049, ("3.05", "0.15")),
    (28300.4, 1342.0, ("28300", "1300")),
    (0.382428, 0.0192600, ("0.382", "0.019")),
    (1.49001, 0.0706700, ("1.490", "0.071")),   # a trailing zero that carries information stays
    (12.34, 0.0996, ("12.34", "0.10")),         # 0.0996 rounds up into the next decade
    (5062.13, 250.45, ("5060", "250")),
    (-0.0004, 0.05, ("0.000", "0.050")),        # rounds to zero: no minus sign
    (2.0, None, ("2.00", None)),                # no uncertainty: three significant digits
    (2.0, 0.0, ("2.00", None)),
    (2.0, math.nan, ("2.00", None)),
])
def test_value_is_rounded_to_the_place_of_a_two_digit_uncertainty(value, sd, expected):
    assert fmt_with_uncertainty(value, sd) == expected


def test_decimal_places_follow_the_uncertainty():
    assert decimals_for_uncertainty(0.15) == 2
    assert decimals_for_uncertainty(1342.0) == -2
    assert decimals_for_uncertainty(0.0996) == 2
    with pytest.raises(ValueError):
        decimals_for_uncertainty(0.0)


@pytest.mark.parametrize("value, expected", [
    (3.05307, "3.05"), (22704.6, "22700"), (0.000123, "0.000123"), (9.996, "10.0"), (0.0, "0"),
    (-0.04, "-0.0400"), (143, "143"), (1e-9, "1.00e-09"), (math.inf, "inf"),
])
def test_three_significant_digits(value, expected):
    assert fmt_sig(value) == expected


def test_structures_become_readable_text_without_brackets_or_quotes():
    text = plain_text({"found": "NONE", "factor": 1.0, "note": "it's 'not' corrected",
                       "nested": {"a_b": [1, 2.5, None]}, "flag": True})
    assert text == ("found: NONE; factor: 1.00; note: it\u2019s \u2018not\u2019 corrected; "
                    "nested: (a b: 1, 2.50, \u2013); flag: yes")
    for bad in "{}[]'\"":
        assert bad not in text
