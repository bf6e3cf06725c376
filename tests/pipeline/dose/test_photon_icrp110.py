"""Cross-organ photon doses on the ICRP-110 adult female phantom (issue 20, part c).

Uniform 1 MBq*h/mL of Lu-177 in the right kidney or the liver, binned into a 4.8 mm dose grid
(:mod:`pipeline.dose.photon_check`). Reference: issue 20 quotes an independent Geant4
calculation on this phantom, against which the 100 mm photon kernel is 46 % low for the left
kidney from the right kidney and 25 % low for the left kidney from the liver; the photon
transport should therefore be about 1/0.54 = 1.85 and 1/0.75 = 1.33 times the 100 mm kernel.
Tolerance 15 % on those ratios (the issue's percentages are rounded and its kernels need not be
ours to the per cent). Measured (2026-12): 2.11 and 1.39 (photon MC SD 0.8 %), i.e. 14 % and 4 %
above the issue's reference; against the 300 mm water kernel, which the issue puts 17-38 % above
the reference, the transport is 21 % and 16 % lower. Self-doses unchanged (within 0.1 %).
"""

from __future__ import annotations

import pytest

from sample_data.icrp110 import default_zip_path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trunk():
    path = default_zip_path()
    if not path.exists():
        pytest.skip(f"{path} is not present (../shared/data/icrp110)")
    from pipeline.dose.photon_check import trunk_case

    return trunk_case(zip_path=path)


@pytest.mark.parametrize("source, expected_ratio", [(2, 1 / 0.54), (3, 1 / 0.75)])
def test_left_kidney_cross_dose_over_the_100_mm_kernel_matches_the_issue_reference(trunk, source, expected_ratio):
    from pipeline.dose.photon_check import TRUNK_ORGANS, cross_doses

    labels, rho = trunk
    res = cross_doses(labels, rho, source, "Lu-177")
    ratio = res["transport"]["kidney_left"] / res["kernel"]["kidney_left"]
    print(f"{TRUNK_ORGANS[source][0]} -> kidney_left: transport/kernel {ratio:.3f} (issue: {expected_ratio:.2f})")
    assert ratio == pytest.approx(expected_ratio, rel=0.15)
    src = TRUNK_ORGANS[source][0]
    assert res["transport"][src] == pytest.approx(res["kernel"][src], rel=0.01)  # self-dose: electrons
    assert res["transport_rel_sd"]["kidney_left"] < 0.02
