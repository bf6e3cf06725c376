"""EANM image-based marrow dose against a hand calculation."""

import pytest

from pipeline.dose.marrow import MarrowSettings, eanm_marrow_dose


def test_marrow_dose_matches_hand_calculation_for_lu177_male():
    # C_VOI = 0.01 MBq*h/mL, Lu-177 electrons 0.1479 MeV/decay, male 1170 g, rho 1.03 g/mL
    out = eanm_marrow_dose(0.01, 0.1479, "male")
    tia_mbq_h = 0.01 * 1170 / 1.03
    dose = tia_mbq_h * 3600e6 * 0.1479 * 1.602176634e-13 / 1.170
    assert out["red_marrow_tia_mbq_h"] == pytest.approx(tia_mbq_h)
    assert out["absorbed_dose_gy"] == pytest.approx(dose)
    # independent of the mass: the self-dose is concentration * E / density
    assert out["absorbed_dose_gy"] == pytest.approx(0.01 / 1.03 * 3600e6 * 0.1479 * 1.602176634e-13 * 1e3)
    assert out["l2l4_red_marrow_tia_mbq_h"] == pytest.approx(0.067 * tia_mbq_h)


def test_female_reference_mass_and_patient_scaling():
    female = eanm_marrow_dose(0.01, 0.1479, "female")
    assert female["red_marrow_mass_g"] == 900.0
    scaled = eanm_marrow_dose(0.01, 0.1479, "female", MarrowSettings(scale_with_body_mass=True), patient_mass_kg=90.0)
    assert scaled["red_marrow_mass_g"] == pytest.approx(900.0 * 1.5)
    assert scaled["red_marrow_tia_mbq_h"] == pytest.approx(1.5 * female["red_marrow_tia_mbq_h"])


def test_unknown_sex_is_refused_without_a_mass_override():
    with pytest.raises(ValueError, match="sex"):
        eanm_marrow_dose(0.01, 0.1479, "unknown")
    assert eanm_marrow_dose(0.01, 0.1479, "unknown", MarrowSettings(red_marrow_mass_g=1000.0))["red_marrow_mass_g"] == 1000.0
