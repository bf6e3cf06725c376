"""Reference ranges of the segmentation QC gate, each with its source.

Every range has three zones: pass inside ``[pass_lo, pass_hi]``, warn between
the pass and fail limits, fail outside ``[fail_lo, fail_hi]``. The pass zones
are wide on purpose (adult patients, hepatomegaly, the splenomegaly common in
haematological patients, contrast-enhanced CT); the fail limits are set where
a value means that the mask is not that organ, with a margin over the
development cases (``tests/pipeline/segment/test_gate_*``) and over the
published ranges below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Limits", "RANGES"]


@dataclass(frozen=True)
class Limits:
    """A three-zone range for one check.

    Parameters
    ----------
    pass_lo, pass_hi : float
        Pass inside ``[pass_lo, pass_hi]``.
    fail_lo, fail_hi : float
        Fail outside ``[fail_lo, fail_hi]``; warn in between.
    unit : str
        Unit of the checked value.
    source : str
        Where the numbers come from.
    """

    pass_lo: float
    pass_hi: float
    fail_lo: float
    fail_hi: float
    unit: str
    source: str

    def status(self, value: float) -> str:
        """``"pass"``, ``"warn"`` or ``"fail"`` for ``value`` (NaN fails)."""
        if value is None or not math.isfinite(value):
            return "fail"
        if self.pass_lo <= value <= self.pass_hi:
            return "pass"
        if self.fail_lo <= value <= self.fail_hi:
            return "warn"
        return "fail"

    def expected(self) -> str:
        """The pass range as text, e.g. ``"70-300 mL"``."""
        def f(v):
            if math.isinf(v):
                return "inf" if v > 0 else "-inf"
            return f"{v:g}"
        if self.pass_lo == self.pass_hi:
            return f"{f(self.pass_lo)} {self.unit}".strip()
        if math.isinf(self.pass_hi):
            return f">= {f(self.pass_lo)} {self.unit}".strip()
        if math.isinf(self.pass_lo):
            return f"<= {f(self.pass_hi)} {self.unit}".strip()
        sep = " to " if min(self.pass_lo, self.pass_hi) < 0 else "-"  # "-109 to -95 HU", not "-109--95"
        return f"{f(self.pass_lo)}{sep}{f(self.pass_hi)} {self.unit}".strip()

    def as_dict(self) -> dict:
        return {"pass": [self.pass_lo, self.pass_hi], "fail_outside": [self.fail_lo, self.fail_hi],
                "unit": self.unit, "source": self.source}


_ICRP89 = ("ICRP Publication 89 (2002) reference adult masses: liver 1800/1400 g, both kidneys "
           "310/275 g, spleen 150/130 g (male/female), density 1.05 g/mL")
_INF = math.inf

#: check key -> Limits. Keys are ``<organ>.<check>`` or ``<check>`` for all organs of a kind.
RANGES: dict[str, Limits] = {
    # --- volumes (mL) ---
    "kidney.volume_ml": Limits(
        70.0, 300.0, 35.0, 450.0, "mL",
        _ICRP89 + "; adult kidney volume 146 +- 33 mL (Emamian et al., AJR 1993;160:83); "
        "compensatory hypertrophy and hydronephrosis to ~300-450 mL warn; a 'kidney' over 450 mL "
        "or under 35 mL is not a kidney"),
    "liver.volume_ml": Limits(
        800.0, 3500.0, 500.0, 5500.0, "mL",
        _ICRP89 + "; adult liver volume 1.0-2.5 L (Heinemann et al., Forensic Sci Int 1999;102:"
        "71), hepatomegaly to 5.5 L warn"),
    "spleen.volume_ml": Limits(
        50.0, 700.0, 20.0, 4000.0, "mL",
        _ICRP89 + "; normal spleen 107-314 mL (Prassopoulos et al., Eur Radiol 1997;7:246); "
        "splenomegaly of haematological disease up to several litres warns"),
    # --- CT numbers (HU), median inside the organ (eroded by one working voxel) ---
    "kidney.median_hu": Limits(
        0.0, 250.0, -40.0, 400.0, "HU",
        "unenhanced renal parenchyma 20-40 HU, nephrographic phase to ~250 HU "
        "(Bae, Radiology 2010;256:32); below -40 HU is fat"),
    "liver.median_hu": Limits(
        20.0, 180.0, -40.0, 250.0, "HU",
        "unenhanced liver 50-70 HU, steatosis down to about 0 HU (warn), portal-venous phase to "
        "~150 HU (Kodama et al., AJR 2007;188:1307)"),
    "spleen.median_hu": Limits(
        20.0, 200.0, -20.0, 260.0, "HU",
        "unenhanced spleen 40-50 HU, enhanced to ~150-200 HU"),
    # --- no gas inside a solid organ (mL of voxels below -400 HU, interior only) ---
    "gas_ml": Limits(
        0.0, 0.5, 0.0, 2.0, "mL",
        "solid organs hold no gas (emphysematous infection aside); bowel always does. "
        "Counted on the smoothed CT inside the organ eroded by one working voxel"),
    # --- fat inside the organ: fraction of interior voxels below -30 HU ---
    "fat_fraction": Limits(
        0.0, 0.15, 0.0, 0.35, "",
        "renal sinus fat is partly inside a hole-filled kidney outline (up to ~15 %); a mask "
        "that is one third fat lies in the mesentery or retroperitoneal fat"),
    # --- one piece ---
    "largest_component_fraction": Limits(
        0.95, 1.0, 0.8, 1.0, "",
        "an organ is one connected piece; islands of more than 20 % mean a mask spread over "
        "several structures (bowel loops)"),
    # --- compactness: volume over convex-hull volume ---
    "kidney.solidity": Limits(
        0.5, 1.0, 0.35, 1.0, "",
        "bean-shaped kidney: 0.63-0.87 on the correct masks of the development cases (sample "
        "patient, real GE CT, TotalSegmentator reference); a mask over several bowel loops is "
        "far less convex"),
    "organ.solidity": Limits(
        0.5, 1.0, 0.42, 1.0, "",
        "liver and spleen: 0.57-0.77 on the correct masks of the development cases (ICRP-110 "
        "AF/AM, sample patient, real GE CT, TotalSegmentator reference); a spleen mask grown into "
        "its neighbours (1.2 L on AM) reads 0.38"),
    # --- position ---
    "kidney.lateral_mm": Limits(
        25.0, 120.0, 10.0, 150.0, "mm",
        "kidney centroid 40-90 mm from the midline beside psoas (Gray's Anatomy, 41st ed.)"),
    "kidney.anterior_mm": Limits(
        -50.0, 20.0, -70.0, 30.0, "mm",
        "antero-posterior position of the kidney centroid relative to the L2-L4 bodies' centroid: "
        "retroperitoneal, beside the vertebral bodies (-21 to +6 mm on the correct masks of the "
        "development cases: ICRP-110 AF/AM, sample patient, real GE CT); bowel loops lie in front "
        "(+41 to +45 mm for a kidney label moved onto the small intestine of AF and AM)"),
    "kidney.level": Limits(
        0.5, 3.0, 0.0, 3.5, "levels above the L3 centre",
        "kidney centroids lie at the T12-L2 levels, hilum at L1-L2 (Gray's Anatomy): 1.1-2.3 levels "
        "above the L3 centre on the correct masks of the development cases; L2-L4 named one level "
        "too low or a kidney mask on a neighbour moves it by about one level"),
    "organ.warn_count": Limits(
        0.0, 1.0, 0.0, 2.0, "checks",
        "three borderline checks on one organ are not three independent flukes: the mask is on "
        "something else (at most 1 warn per organ on the correct masks of the development cases)"),
    # --- the CT's numbers, measured on its fat ---
    "ct.fat_peak_hu": Limits(
        -109.0, -95.0, -152.0, -52.0, "HU",
        "subcutaneous fat reads about -90 to -110 HU at 120 kVp (its peak on the development CTs: "
        "-106 to -96 HU); further off is a calibration, beam-hardening or tube-voltage difference "
        "that moves every CT number and the densities made from them. The built-in segmenter "
        "reads such a CT shifted to -102 HU (pipeline.segment.ct_numbers); the CT is not changed"),
    "kidney.volume_ratio": Limits(
        1.0, 1.6, 1.0, 2.5, "",
        "the two kidneys differ by less than ~20-30 % in healthy adults (Emamian 1993); a ratio "
        "over 2.5 is an atrophic or missing kidney or a wrong mask"),
    "organ.side_mm": Limits(
        15.0, _INF, 0.0, _INF, "mm",
        "distance of the centroid from the midline towards the organ's own side (liver right, "
        "spleen and left kidney left); negative means the wrong side"),
    "liver.dome_gap_mm": Limits(
        -_INF, 12.0, -_INF, 20.0, "mm",
        "the liver fills the right upper quadrant up to the right hemidiaphragm: the gap between "
        "the liver top and the right lung base (5th percentile over the columns holding both) is "
        "the diaphragm, 0-7.5 mm on the correct masks of the development cases (ICRP-110 AF/AM at "
        "2-4 mm, sample patient, real GE CT); 24-50 mm with the upper half of the liver missing"),
    # --- SPECT uptake (organ mean / shell 10-25 mm around it) ---
    "kidney.uptake_ratio": Limits(
        1.0, _INF, 0.5, _INF, "",
        "renal uptake of peptides, PSMA ligands and small molecules exceeds its surroundings; "
        "a kidney mask at half its surroundings' concentration is not on the kidney"),
    "kidney.uptake_symmetry": Limits(
        0.6, 1.0, 0.35, 1.0, "",
        "mean SPECT concentration of the colder kidney over the hotter one: both kidneys take up "
        "any radiopharmaceutical alike (differential renal function 45-55 % in healthy adults, "
        "renography guidelines; with kidney volumes up to 1.6 apart the concentrations stay within "
        "0.6); 0.96-0.995 on the reference masks of the ICRP-110 cases with a simulated SPECT, 0.79-0.99 "
        "on the sample patient's at 1-168 h (washout half-lives 50 and 45 h); a kidney mask in the "
        "fossa of a removed kidney (ICRP-110 female, fossa filled with fat or bowel) read 0.18-0.20 "
        "beside the hot kidney, where the volume checks only warned; a non-functioning kidney also "
        "reads low: a look is needed either way"),
    "organ.uptake_ratio": Limits(
        0.6, _INF, 0.3, _INF, "",
        "liver and spleen concentrations are not far below their surroundings for the "
        "radiopharmaceuticals of spectdose"),
    "organ.hot_lesion_fraction": Limits(
        0.0, 0.05, 0.0, 1.0, "",
        "share of the liver's or spleen's interior (more than 6 mm inside its surface: little "
        "spill from hot neighbours) above twice the SPECT level of its parenchyma (the median "
        "without the hot values): hot lesions (metastases) inside the mask, whose "
        "uptake the organ's mean absorbed dose then includes, while normal-organ dose limits "
        "refer to the parenchyma; and a mask cut around them may have lost parenchyma. ICRP-110 "
        "AF_3mm reference liver, 12 mm FWHM SPECT at three contrasts: 0.003-0.016 with one 12 mm "
        "metastasis, 0.39-0.40 with metastases at 10 times the liver in 15 % of it, 0.61-0.62 "
        "in 30 % (the lesions' spill above twice the parenchyma makes the share 2-2.6 times the metastases' volume share); the sample patient's liver with its "
        "tumour labelled apart 0.009, with the tumour inside (the demo's segmentation) 0.052-0.060. Never a "
        "fail: the lesions are real; a warn asks for a look at the liver mask and for the dose "
        "to the parenchyma"),
    "organ.lesion_share": Limits(
        0.0, 0.10, 0.0, 1.0, "",
        "share of the liver's or spleen's outline that the built-in segmenter labelled apart as hot "
        "lesions (above twice the parenchyma's SPECT level; their cores as lesions 100+) and their "
        "spill zone (pipeline.segment.organ_lesions). The spill of many lesions also raises the "
        "parenchyma left between them, below the threshold. Measured, the parenchyma's mean SPECT "
        "against the true parenchyma as imaged (the same SPECT without the lesions), 12 mm FWHM: "
        "ICRP-110 AF_3mm / AM_3mm with hot metastases (10 x the liver) in 5 % of the liver: share "
        "0.12 / 0.12, +6.5 / +8.3 %; in 15 %: 0.30 / 0.32, +20 / +20 %; in 30 %: 0.48 / 0.46, "
        "+42 / +59 %; one 12 mm metastasis (AF_3mm): 0.011, +2.1 %; the sample patient's 34 mL "
        "metastasis: 0.04, liver dose 1.288 Gy against 1.280 Gy in the true liver (as imaged). "
        "Warn above 0.10: the parenchyma's dose is then an upper estimate, too high by roughly 0.6-1.3 "
        "times the share in percent; never a fail"),
    # --- spine ---
    "vertebrae_L2L4.extent_mm": Limits(
        70.0, 135.0, 50.0, 170.0, "mm",
        "L2 top to L4 bottom: three lumbar bodies of 25-32 mm and two discs of 8-12 mm "
        "(Zhou et al., Eur Spine J 2000;9:242)"),
    "vertebrae_L2L4.bone_fraction": Limits(
        0.7, 1.0, 0.4, 1.0, "",
        "a vertebral body mask lies on bone: cortex 500-1000 HU and trabecular bone 100-250 HU "
        "(Pickhardt 2013); fraction of its voxels above 100 HU on the smoothed CT"),
    "vertebrae_L2L4.body_height_mm": Limits(
        18.0, 40.0, 12.0, 50.0, "mm",
        "lumbar vertebral body height 25-32 mm in adults (Zhou 2000), lower with fractures"),
    "vertebrae_L2L4.bodies": Limits(
        3.0, 3.0, 1.0, 4.0, "",
        "L2, L3 and L4 are three bodies separated by discs"),
    "vertebrae_L2L4.level_offset": Limits(
        -0.5, 0.5, -0.5, 0.5, "levels",
        "the L2-L4 mask against the levels found independently on the CT (spine vote); one "
        "level off is a fail"),
    "vertebrae_L2L4.ap_step_mm": Limits(
        0.0, 12.0, 0.0, 25.0, "mm",
        "antero-posterior distance between the marrow VOI centroids of adjacent L2-L4 bodies: "
        "0.1-7.9 mm on the correct masks of the development cases (ICRP-110 reference bodies, "
        "sample patient, the built-in masks of the GE and TotalSegmentator CTs); a body drawn on "
        "the vertebral arch lies 30-45 mm behind its neighbours (ICRP-110 AM at 2 mm, L3 and L4 "
        "VOIs on the arch: 21.5 mm); a warn between 12 and 25 mm, as a degenerative "
        "spondylolisthesis shifts a body forward by up to a quarter (grade 1, ~10 mm) or half "
        "(grade 2, ~20 mm) of its depth (Meyerding)"),
    "vertebrae_L2L4.canal_offset_mm": Limits(
        8.0, 200.0, 0.0, 200.0, "mm",
        "the marrow VOI lies in the vertebral body, in front of the spinal canal: antero-posterior "
        "distance from the canal's centre (a hole of the bone below 60 HU) to the VOI's centroid, the "
        "most posterior of L2-L4: 20.6-23.4 mm on the ICRP-110 reference bodies (2-4 mm), 25.0 mm on "
        "the GE CT's and 12.3 mm on the TotalSegmentator CT's built-in VOIs (lumbar body 30-35 mm "
        "deep, canal 15-20 mm); -8.9 mm where a 2 mm ICRP-110 AM CT had its L3 VOI on the vertebral "
        "arch; below 0 the VOI is centred behind the canal: on the arch"),
    "marrow_L2L4.volume_per_vertebra_ml": Limits(
        3.0, 45.0, 1.5, 70.0, "mL",
        "trabecular core of a lumbar body (~30-45 mL whole body) with a 4 mm margin from cortex and "
        "endplates: 4-25 mL (less with 5 mm slices); "
        "EANM 2010 marrow dosimetry guideline (Hindorf et al.) VOIs in L2-L4"),
    "marrow_L2L4.uptake_to_coldest": Limits(
        1.0, 1.3, 1.0, _INF, "",
        "mean SPECT concentration of a vertebra's marrow VOI over the coldest of L2-L4: red marrow in "
        "L2-L4 reads alike (1.00-1.10 on the development cases' built-in VOIs and simulated SPECTs); "
        "above 1.3 it may hold focal uptake (warn: a 12 mm metastasis at 5 x the marrow read 1.38 on the "
        "sample patient and raised the VOI's mean 12 %); above 1.5, if it is the only one, it is left "
        "out of the marrow VOI (EANM 2010: VOIs in vertebrae free of metastases); warn, never fail: "
        "the other vertebrae carry the marrow dose"),
    "vertebrae_L2L4.metal_ml": Limits(
        0.0, 0.05, 0.0, _INF, "mL",
        "volume of L2-L4 (bodies and marrow VOI) above 2500 HU: metal (pedicle screws, rods) or dense "
        "cement; bone stays below about 2000 HU at 80-140 kV (cortical bone 1000-1900 HU). Streaks around "
        "metal bias the CT numbers of the VOI and the SPECT's attenuation map there: the marrow "
        "concentration needs a look (warn, never fail)"),
    "marrow_L2L4.median_hu": Limits(
        60.0, 600.0, 0.0, 800.0, "HU",
        "adult lumbar trabecular bone 100-250 HU, osteoporotic to ~60 HU (Pickhardt et al., Ann "
        "Intern Med 2013;158:588); sclerosis and low-dose attenuation CTs read higher (536 HU in "
        "the real GE Optima CTAC of the development data); below 0 HU it is disc or soft tissue, "
        "above 800 HU cortex"),
}
