"""Uncertainty of the organ doses, the EANM marrow dose, the kidney BED and the planned activity.

EANM guidance on uncertainty analysis in molecular-radiotherapy dosimetry (Gear et al.,
Eur J Nucl Med Mol Imaging 2018;45:2456-2474): every component (camera calibration,
time-point activities, recovery correction, volume, curve fit with its covariance, S-values and
density) is propagated to the absorbed dose, analytically (:mod:`.propagate`) and by a Monte
Carlo resampling of the organ-level chain; the two must agree. Sources and their defaults:
:mod:`.sources`; command line: ``spectdose uncertainty`` (:mod:`.cli`). A reduced-protocol cycle of a
course (one or two scans and an earlier cycle's kinetics) is propagated through its TIA formula,
with the earlier fit's covariance and Hänscheid's method uncertainty (:mod:`.reduced`).
"""
