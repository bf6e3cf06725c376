"""The uncertainty sources: values, defaults and where the defaults come from.

Every source is a relative standard deviation (or a length in mm that the stage turns into one)
of one factor of the organ-level dose chain (Gear et al. 2018, eq. 1 and section "Absorbed dose")::

    D_organ = k_organ * TIA_organ(A_1 .. A_N),   A_i = counts_i / (CF * RC),
    k_organ = D_mean / TIA_organ  (Gy per MBq*h: S-value, mass and cross-dose of this patient)

- ``calibration``: the camera calibration factor CF, one value for every time point and organ
  (fully correlated across time points, Gear et al. section "Calibration").
- ``activity_noise``: independent per time point (counts and reconstruction); by default the
  kinetics stage's error model (``sigma_i = 0.10 max(|A_i|, 0.02 max|A|)``, inflated by the
  reduced chi-square), so the analytic fit covariance is the one in ``fits.json``.
- ``model_selection``: the choice among the fitted models (Akaike weights), independent per organ.
- ``recovery``: partial-volume correction from a Gaussian PSF whose FWHM is known to a relative
  SD; only where the kinetics stage corrected (``pvc``) or a recovery coefficient was applied.
- ``segmentation``: the organ boundary placed to within a boundary-shift SD (a fraction of the
  label-grid voxel), measured as the change of the mean dose of masks grown and shrunk by it.
- ``registration``: target registration error (mm) of each non-reference time point, from the
  registration QC (``tre_mm``) when it reports one, else the default below.
- ``s_value`` and ``density``: the voxel S-values (kernel) and the HU-density curve (mass).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

__all__ = ["UncertaintySettings", "SOURCE_NAMES", "SOURCE_REFERENCES", "settings_from_config"]

#: Source names in the order of the budget table.
SOURCE_NAMES = ("calibration", "activity_noise", "model_selection", "registration", "recovery", "segmentation",
                "s_value", "density")

#: Why each default is what it is (written with every result).
SOURCE_REFERENCES = {
    "calibration": "assumed 3 % relative SD of the SPECT calibration factor: repeated phantom "
                   "calibrations of quantitative Lu-177 SPECT/CT reproduce to a few per cent (EANM "
                   "uncertainty guidance, Gear et al. 2018, calibration section); set it from your own "
                   "repeat calibrations",
    "activity_noise": "kinetics stage error model (fits.json options.error_model): sigma_i = 0.10 "
                      "max(|A_i|, 0.02 max|A|), covariance inflated by the reduced chi-square; or "
                      "'relative' (activity_relative_sd) or 'counts' (Poisson: counts_per_mbq)",
    "model_selection": "Akaike-weighted spread of the candidate models' TIA around the chosen one, "
                       "sum_m w_m (TIA_m - TIA_chosen)^2 (the between-model term of Burnham and Anderson's "
                       "unconditional variance), from the candidates of fits.json; 0 when one model is "
                       "admissible. Without it the sample patient's kidney intervals cover 90-91 % (the "
                       "mono-exponential, chosen in 2 of 3 noisy realisations, is biased low)",
    "registration": "TRE from register/<tp>/qc.json (key tre_mm) when present, else 2 mm assumed "
                    "(rigid CT-CT registration of the trunk, about half a 4.8 mm SPECT voxel); its "
                    "effect on each organ's activity from shifting the dose map by TRE/sqrt(3) per axis",
    "recovery": "PSF FWHM relative SD 5 % (assumed: FWHM measured on a line source after "
                "reconstruction); d ln(RC correction) / d ln(FWHM) = (1 - RC) / RC (spill-out "
                "proportional to the FWHM for organs much larger than it): 0.33 for the sample patient's "
                "kidneys with rbv, where the kinetics README measured about 0.2 (PSF +-20 %: kidney dose "
                "+3.5 / -4.7 %), so conservative",
    "segmentation": "boundary-shift SD of 0.5 voxel of the label grid (assumed: boundary within "
                    "+-1 voxel, 95 %); effect from the organ mean dose of masks grown and shrunk by "
                    "that distance (fractional boundary voxels)",
    "s_value": "2 % relative SD of the voxel S-values: the kernels agree with direct Monte Carlo "
               "within 0.1-0.6 % and with Lanconelli 2012 within 1.2 % (README validation table)",
    "density": "1 % relative SD of the mass density from the HU-density curve: a CT-number error of "
               "about 10 HU in soft tissue (about 0.001 g/mL per HU)",
}


@dataclass(frozen=True)
class UncertaintySettings:
    """Values of the uncertainty sources and of the propagation.

    Attributes
    ----------
    calibration_relative_sd : float
        Relative SD of the camera calibration factor (one value for all time points and organs).
    activity_noise : str
        ``"fit_error_model"`` (default), ``"relative"`` or ``"counts"``.
    activity_relative_sd : float
        Relative SD of one time point's organ activity for ``activity_noise: relative``.
    counts_per_mbq : float or None
        Detected counts per MBq in the organ over one acquisition (sensitivity cps/MBq x
        acquisition s) for ``activity_noise: counts``.
    model_selection : bool
        Include the model-selection source.
    psf_fwhm_relative_sd : float
        Relative SD of the PSF FWHM used by the partial-volume correction.
    segmentation_boundary_shift_voxels : float
        SD of the organ boundary position, in voxels of the label grid (geometric mean spacing).
    registration_tre_mm : float
        Target registration error of a non-reference time point when the registration QC gives
        none, mm.
    s_value_relative_sd : float
        Relative SD of the voxel S-values.
    density_relative_sd : float
        Relative SD of the mass density (HU-density curve).
    confidence : float
        Confidence of the planned activity (probability that the organ stays below its limit).
    mc_draws : int
        Monte Carlo draws.
    seed : int
        Seed of the Monte Carlo generator (results are reproducible).
    agreement_relative_tolerance : float
        Largest accepted relative difference of the analytic and Monte Carlo SD (QC check).
    """

    calibration_relative_sd: float = 0.03
    activity_noise: str = "fit_error_model"
    activity_relative_sd: float = 0.10
    counts_per_mbq: float | None = None
    model_selection: bool = True
    psf_fwhm_relative_sd: float = 0.05
    segmentation_boundary_shift_voxels: float = 0.5
    registration_tre_mm: float = 2.0
    s_value_relative_sd: float = 0.02
    density_relative_sd: float = 0.01
    confidence: float = 0.95
    mc_draws: int = 2000
    seed: int = 20180920
    agreement_relative_tolerance: float = 0.10

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name.endswith(("_sd", "_voxels", "_mm", "_tolerance")) and not (v >= 0):
                raise ValueError(f"uncertainty.{f.name} must be >= 0, got {v!r}")
        if self.activity_noise not in ("fit_error_model", "relative", "counts"):
            raise ValueError(f"uncertainty.activity_noise must be fit_error_model, relative or counts, "
                             f"got {self.activity_noise!r}")
        if self.activity_noise == "counts" and not (self.counts_per_mbq and self.counts_per_mbq > 0):
            raise ValueError("uncertainty.activity_noise: counts needs counts_per_mbq > 0")
        if not 0.5 <= self.confidence < 1:
            raise ValueError(f"uncertainty.confidence must be in [0.5, 1), got {self.confidence!r}")
        if self.mc_draws < 100:
            raise ValueError(f"uncertainty.mc_draws must be >= 100, got {self.mc_draws!r}")

    def describe(self) -> dict:
        """The settings with the source of every default, for the output JSON."""
        return {"values": asdict(self), "sources": dict(SOURCE_REFERENCES)}


def settings_from_config(section: dict | None, **overrides) -> UncertaintySettings:
    """Settings from the ``uncertainty:`` section of the workflow config, then ``overrides``.

    Keys that are not settings (``resources``) are ignored; ``None`` overrides are skipped.
    """
    names = {f.name for f in fields(UncertaintySettings)}
    values = {k: v for k, v in (section or {}).items() if k in names}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return UncertaintySettings(**values)
