"""The photon Monte Carlo in the dose stage: regions, stopping rule, organ photon doses, provenance.

The dose stage (:func:`pipeline.dose.stage.compute_dose`) with ``photon_method: transport`` runs
:func:`pipeline.dose.photon_transport.photon_dose_gy` on the dose grid (the TIA map's decays, the
CT density averaged over each dose voxel, vacuum outside the body) and adds its dose (Gy, already
in the real media, so not density corrected) to the density-corrected electron dose. The organs
(labels other than the body; the dose voxels that hold the centre of one of their CT voxels) are
the regions of the stopping rule, which compares each organ's photon SD with its whole energy
(photons plus electrons on the dose grid).
"""

from __future__ import annotations

import numpy as np

from ..grid import bounding_box, resample_to

__all__ = ["BODY_LABEL", "labels_on_grid", "transport_photon_dose", "photon_transport_record"]

BODY_LABEL = 7


def labels_on_grid(voxels, ct, grid, keep: set) -> np.ndarray:
    """The label of each voxel of ``grid`` that holds the centre of a CT voxel of that label (else 0).

    Parameters
    ----------
    voxels : pipeline.dose.organs.LabelVoxels
        Voxels of each label on the CT grid.
    ct : pipeline.image.Image
        Provides the CT grid.
    grid : pipeline.image.Image
        Target grid (values unused).
    keep : set of int
        Labels to map (a dose voxel with centres of two labels takes the higher id).

    Returns
    -------
    numpy.ndarray of int64, shape of ``grid``
    """
    out = np.zeros(grid.shape, np.int64)
    lin = (np.linalg.inv(grid.affine) @ ct.affine)[:3, :]
    for label in sorted(keep):
        idx = voxels.indices.get(label)
        if idx is None or idx.size == 0:
            continue
        ijk = np.stack(np.unravel_index(idx, ct.shape, order=voxels.order), axis=1).astype(np.float64)
        c = np.floor(ijk @ lin[:, :3].T + lin[:, 3] + 0.5).astype(np.int64)
        ok = np.all((c >= 0) & (c < np.asarray(grid.shape)), axis=1)
        out[tuple(c[ok].T)] = label
    return out


def transport_photon_dose(tia_mbq_s: np.ndarray, medium, voxel_mm, decay, settings, regions: np.ndarray | None = None,
                          other_dose_gy: np.ndarray | None = None):
    """Photon dose (Gy) by the photon Monte Carlo in the dose grid's densities, vacuum outside the body.

    Parameters
    ----------
    tia_mbq_s : numpy.ndarray, shape (I, J, K)
        Decays per voxel, MBq*s.
    medium : pipeline.dose.medium.DoseGridMedium
    voxel_mm : sequence of 3 float
        Dose-grid voxel sides, mm.
    decay : kernels.decay.DecayData
    settings : pipeline.dose.stage.DoseSettings
        ``photon_transport``.
    regions : numpy.ndarray of int, shape (I, J, K), optional
        Label per dose voxel, for the stopping rule.
    other_dose_gy : numpy.ndarray, shape (I, J, K), optional
        The rest of the dose (electrons, density corrected), Gy: with ``regions``, the stopping
        rule compares the photon SD with each region's whole energy.

    Returns
    -------
    pipeline.dose.photon_transport.PhotonDose
    """
    from .photon_transport import photon_dose_gy

    if decay is None or voxel_mm is None:
        raise ValueError("photon_method 'transport' needs the decay data and the voxel size")
    other_j = None
    if regions is not None and other_dose_gy is not None and regions.max() > 0:
        vol_ml = float(np.prod(np.broadcast_to(np.asarray(voxel_mm, float), (3,)))) * 1e-3
        mass_kg = np.where(medium.body, np.asarray(medium.density_g_per_ml, float), 0.0) * vol_ml * 1e-3
        other_j = np.bincount(regions.ravel(), (np.asarray(other_dose_gy, float) * mass_kg).ravel(),
                              int(regions.max()) + 1)
    return photon_dose_gy(tia_mbq_s, medium.density_g_per_ml, medium.body, voxel_mm, decay,
                          settings=settings.photon_transport, regions=regions, region_other_j=other_j)


def _organ_photon_means(photon, organs, voxels, tia, ct, rho_ct, fine, medium) -> dict:
    """Mass-weighted mean photon dose (Gy) of each organ, as it is in the organ table.

    Organ-grid targets take the photon dose the organ grid added (:mod:`pipeline.dose.organgrid`);
    other organ voxels the dose-grid photon map sampled trilinearly (as ``dose_ct.nii.gz``); the
    body (label 7, most of it outside the organ box) its dose-grid mean, energy over mass.
    """
    from .medium import sub_grid

    out = {}
    rest = [o for o in organs if o.label != BODY_LABEL]
    photon_ct = np.zeros(ct.shape, np.float32, order=voxels.order)
    covered = np.zeros(ct.shape, bool, order=voxels.order)
    if fine is not None and fine.photon_gy is not None:
        view, seen = photon_ct[fine.box], covered[fine.box]
        view[fine.targets] = fine.photon_gy[fine.targets]
        seen[fine.targets] = True
    missing = [o for o in rest if not np.all(voxels.values(covered, o.label))]
    if missing:
        mask = np.zeros(ct.shape, bool, order=voxels.order)
        for o in missing:
            mask.ravel(order=voxels.order)[voxels.indices[o.label]] = True
        box = bounding_box(mask)
        sub = resample_to(tia.with_array(photon.dose_gy, unit="Gy"), sub_grid(ct, box), "linear", default_value=0.0)
        photon_ct[box] = np.where(mask[box], sub.array, photon_ct[box])
    for o in rest:
        m = voxels.values(rho_ct, o.label)
        out[o.name] = float(np.sum(voxels.values(photon_ct, o.label) * m) / np.sum(m)) if np.sum(m) > 0 else None
    body = [o for o in organs if o.label == BODY_LABEL]
    if body:
        mass = np.where(medium.body, medium.density_g_per_ml, 0.0)
        out[body[0].name] = float(np.sum(photon.dose_gy * mass) / np.sum(mass)) if np.sum(mass) > 0 else None
    return out


def photon_transport_record(photon, organs, voxels, tia, ct, rho_ct: np.ndarray, settings, fine=None,
                            medium=None) -> dict:
    """Provenance of the photon Monte Carlo: settings, energy balance, each organ's photon dose and its SD.

    Parameters
    ----------
    photon : pipeline.dose.photon_transport.PhotonDose
    organs : list of pipeline.dose.organs.OrganDose
    voxels : pipeline.dose.organs.LabelVoxels
        Organ voxels on the CT grid.
    tia : pipeline.image.Image
        Provides the dose grid.
    ct : pipeline.image.Image
        Provides the CT grid.
    rho_ct : numpy.ndarray, shape of the CT
        Mass density, g/mL.
    settings : pipeline.dose.stage.DoseSettings
    fine : pipeline.dose.organgrid.OrganGridDose, optional
        The organ-grid dose (its photon part is reused).
    medium : pipeline.dose.medium.DoseGridMedium
        Density and body on the dose grid (the body's photon mean).
    """
    means = _organ_photon_means(photon, organs, voxels, tia, ct, rho_ct, fine, medium)
    per_organ = {}
    for o in organs:
        mean = means.get(o.name)
        per_organ[o.name] = {
            "photon_mean_gy": mean,
            "photon_share_of_mean": mean / o.mean_gy if mean is not None and o.mean_gy > 0 else None,
            "photon_mean_relative_sd_mc": photon.region_rel_sd.get(int(o.label)),
            "mean_relative_sd_mc": photon.region_total_rel_sd.get(int(o.label))}
    pt = settings.photon_transport
    emitted = photon.energy_emitted_j
    return {**photon.info,
            "settings": {"target_rel_sd": pt.target_rel_sd, "max_histories": pt.max_histories,
                         "batch_histories": pt.batch_histories, "min_batches": pt.min_batches, "seed": pt.seed,
                         "energy_cut_mev": pt.energy_cut_mev, "coherent": pt.coherent},
            "energy_emitted_j": emitted, "energy_deposited_j": photon.energy_deposited_j,
            "energy_escaped_j": photon.energy_escaped_j,
            "escaped_fraction": photon.energy_escaped_j / emitted if emitted else None,
            "conservation_error": ((photon.energy_deposited_j + photon.energy_escaped_j) / emitted - 1
                                   if emitted else 0.0),
            "statistics": "relative SD from the spread of the batches over the organ's dose voxels (those holding "
                          "the centre of one of its CT voxels): of the organ's photon dose "
                          "(photon_mean_relative_sd_mc) and of its whole dose (mean_relative_sd_mc, the stopping "
                          "rule)",
            "organs": per_organ}
