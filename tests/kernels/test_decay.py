"""Decay data against the ICRP-107 values quoted in the physics notes."""

import pytest

from kernels.decay import UnknownNuclideError, load_decay, normalise_nuclide

# (half-life h, beta keV, conversion keV, Auger keV, photons keV) per decay, ICRP-107,
# as tabulated in ../shared/notes/physics.md section 1.
REFERENCE = {
    "Cu-67": (61.83, 135.9, 13.7, 0.75, 115.4),
    "Lu-177": (6.647 * 24, 133.3, 13.5, 1.1, 35.1),
    "Y-90": (64.1, 932.9, 0.2, 0.0, 0.0),
}


@pytest.mark.parametrize("nuclide", sorted(REFERENCE))
def test_energies_per_decay_match_icrp107_table(nuclide):
    t_half, beta, ce, auger, photons = REFERENCE[nuclide]
    d = load_decay(nuclide)
    assert d.half_life_h == pytest.approx(t_half, rel=1e-4)
    assert d.beta_energy_mev * 1e3 == pytest.approx(beta, abs=0.1)
    assert d.conversion_energy_mev * 1e3 == pytest.approx(ce, abs=0.1)
    assert d.auger_energy_mev * 1e3 == pytest.approx(auger, abs=0.1)
    assert d.photon_energy_mev * 1e3 == pytest.approx(photons, abs=0.1)


@pytest.mark.parametrize("nuclide", sorted(REFERENCE))
def test_tabulated_beta_spectrum_reproduces_mean_beta_energy(nuclide):
    """The spectrum's mean times betas per decay equals the branch sum within 1 %."""
    d = load_decay(nuclide)
    e, pdf = d.beta_pdf()
    import numpy as np

    mean = np.trapezoid(e * pdf, e)
    assert mean * d.betas_per_decay() == pytest.approx(d.beta_energy_mev, rel=0.01)


@pytest.mark.parametrize("nuclide", ["Tb-161", "I-131", "Sm-153", "Ho-166", "Re-188"])
def test_other_beta_emitters_load_by_name(nuclide):
    d = load_decay(nuclide)
    assert d.is_beta_emitter and d.half_life_h > 0


@pytest.mark.parametrize("spelling", ["Lu-177", "lu177", "177Lu", "LU-177", "Lu_177", "177-Lu"])
def test_common_spellings_normalise(spelling):
    assert normalise_nuclide(spelling) == "Lu-177"


def test_metastable_names_keep_their_suffix():
    assert normalise_nuclide("tc99m") == "Tc-99m"


def test_unknown_nuclide_is_a_clear_error():
    with pytest.raises(UnknownNuclideError, match="Xx-999"):
        load_decay("Xx-999")
