"""Red-marrow absorbed dose by the EANM image-based method.

EANM 2010 bone-marrow dosimetry guideline (Hindorf et al., EJNMMI
2010;37:1238): the time-integrated activity concentration in a VOI in the
trabecular part of the L2-L4 vertebral bodies stands for the red marrow there;
L2-L4 hold a share ``f_L2L4`` of the total red marrow of the reference adult
(6.7 %), so the total red-marrow TIA is

    TIA_RM = C_VOI * V_RM,L2L4 / f_L2L4 = C_VOI * m_RM / rho_RM,

with ``C_VOI`` the mean TIA concentration in the VOI (MBq*h/mL), ``m_RM`` the
total red-marrow mass (ICRP 89 reference: 1170 g adult male, 900 g adult
female) and ``rho_RM`` the red-marrow density (1.03 g/mL, ICRP 89). The
self-dose is ``D = TIA_RM * E_e * phi / m_RM`` with ``E_e`` the electron
energy per decay (ICRP-107) and ``phi`` the electron absorbed fraction in red
marrow (1.0 assumed by default: complete local absorption; cross-dose from
the remainder of the body and photons are neglected, as in the guideline's
self-dose term).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["MarrowSettings", "REFERENCE_RED_MARROW_MASS_G", "REFERENCE_BODY_MASS_KG", "eanm_marrow_dose"]

#: ICRP Publication 89 reference red-marrow mass of adults, g.
REFERENCE_RED_MARROW_MASS_G = {"male": 1170.0, "female": 900.0}
#: ICRP Publication 89 reference adult body mass, kg (for optional patient scaling).
REFERENCE_BODY_MASS_KG = {"male": 73.0, "female": 60.0}

MEV_TO_J = 1.602176634e-13


@dataclass(frozen=True)
class MarrowSettings:
    """Assumptions of the EANM image-based marrow dose; all reported with the result.

    Attributes
    ----------
    l2l4_share : float
        Fraction of the total red marrow in L2-L4 (0.067, EANM 2010).
    red_marrow_density_g_per_ml : float
        Density of red marrow (1.03 g/mL, ICRP 89).
    electron_absorbed_fraction : float
        Fraction of electron energy absorbed in red marrow (1.0: local deposition).
    red_marrow_mass_g : float or None
        Override of the reference red-marrow mass (g).
    scale_with_body_mass : bool
        Scale the reference red-marrow mass by patient/reference body mass.
    """

    l2l4_share: float = 0.067
    red_marrow_density_g_per_ml: float = 1.03
    electron_absorbed_fraction: float = 1.0
    red_marrow_mass_g: float | None = None
    scale_with_body_mass: bool = False


def red_marrow_mass_g(sex: str, settings: MarrowSettings, patient_mass_kg: float | None = None) -> float:
    """Total red-marrow mass (g) for ``sex`` ("male"/"female"), optionally scaled to the patient."""
    if settings.red_marrow_mass_g is not None:
        return float(settings.red_marrow_mass_g)
    sex = sex.lower()
    if sex not in REFERENCE_RED_MARROW_MASS_G:
        raise ValueError(f"sex must be 'male' or 'female' for a reference red-marrow mass, got {sex!r}")
    mass = REFERENCE_RED_MARROW_MASS_G[sex]
    if settings.scale_with_body_mass:
        if patient_mass_kg is None:
            raise ValueError("patient mass scaling asked for but no patient mass given")
        mass *= patient_mass_kg / REFERENCE_BODY_MASS_KG[sex]
    return float(mass)


def eanm_marrow_dose(voi_tia_concentration_mbq_h_per_ml: float, electron_energy_mev: float, sex: str,
                     settings: MarrowSettings = MarrowSettings(), patient_mass_kg: float | None = None) -> dict:
    """Red-marrow self-dose (Gy) by the EANM image-based method.

    Parameters
    ----------
    voi_tia_concentration_mbq_h_per_ml : float
        Mean time-integrated activity concentration in the L2-L4 marrow VOI, MBq*h/mL.
    electron_energy_mev : float
        Electron energy emitted per decay (beta + conversion + Auger), MeV.
    sex : str
        ``"male"`` or ``"female"`` (reference red-marrow mass).

    Returns
    -------
    dict
        ``red_marrow_tia_mbq_h``, ``red_marrow_mass_g``, ``absorbed_dose_gy`` and the assumptions.
    """
    mass_g = red_marrow_mass_g(sex, settings, patient_mass_kg)
    volume_ml = mass_g / settings.red_marrow_density_g_per_ml
    tia_mbq_h = voi_tia_concentration_mbq_h_per_ml * volume_ml
    decays = tia_mbq_h * 3600.0 * 1e6
    energy_j = decays * electron_energy_mev * MEV_TO_J * settings.electron_absorbed_fraction
    dose_gy = energy_j / (mass_g * 1e-3)
    return {
        "method": "EANM 2010 image-based (L2-L4 VOI), red-marrow self-dose from electrons",
        "voi_tia_concentration_mbq_h_per_ml": float(voi_tia_concentration_mbq_h_per_ml),
        "l2l4_red_marrow_tia_mbq_h": float(tia_mbq_h * settings.l2l4_share),
        "red_marrow_tia_mbq_h": float(tia_mbq_h),
        "red_marrow_mass_g": mass_g,
        "absorbed_dose_gy": float(dose_gy),
        "assumptions": {**asdict(settings), "sex": sex, "patient_mass_kg": patient_mass_kg,
                        "reference": "Hindorf et al. EJNMMI 2010;37:1238; ICRP 89 red-marrow masses",
                        "neglected": "photon and cross-dose from other organs and the remainder of the body"},
    }
