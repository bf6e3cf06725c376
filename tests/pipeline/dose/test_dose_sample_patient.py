"""Sample patient (small preset, noise-free, Lu-177 and Y-90): the chain ingest -> register -> kinetics ->
dose against the truth dose.

Truth dose: the generator's true TIA as the SPECT sees it without noise (binned to the 4.8 mm
dose grid and blurred by the PSF: 11 mm Lu-177, 15 mm Y-90; ``truth/spect_psf_tia.nii.gz``) convolved with the same
kernels, CT and labels. Using the PSF-blurred truth takes partial volume out of the comparison:
what is left are the errors of ingest, registration, voxel kinetics and the dose stage. The
unblurred truth (``truth/tia.nii.gz``) gives the partial-volume loss itself, which is reported
(not asserted) by the test's output.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from kernels.decay import load_decay
from kernels.select import svalues_for_voxel_size
from pipeline.dose.organgrid import near_electron_kernels
from pipeline.dose.stage import DoseSettings, compute_dose
from pipeline.imageio import read_image

pytestmark = pytest.mark.slow

ORGANS = ("kidney_left", "kidney_right", "liver", "spleen")


@pytest.fixture(scope="module", params=["Lu-177", "Y-90"])
def chain(tmp_path_factory, request):
    from sample_data.generator import generate

    from pipeline.dose.cli import main as dose_main
    from pipeline.ingest.cli import main as ingest_main
    from pipeline.kinetics.cli import main as kinetics_main
    from pipeline.register.cli import main as register_main

    root = tmp_path_factory.mktemp("dose_sample")
    sample = generate(root / "sample", preset="small", nuclide=request.param, seed=0, noise=False)
    res = root / "results" / "SAMPLE01"
    labels = sample / "truth" / "labels.nii.gz"
    assert ingest_main([str(sample / "manifest.yaml"), "--patient-id", "SAMPLE01", "--out", str(res / "ingest")]) == 0
    assert register_main(["--ingest-dir", str(res / "ingest"), "--out", str(res / "register")]) == 0
    assert kinetics_main(["--register-dir", str(res / "register"), "--labels", str(labels),
                          "--out", str(res / "kinetics")]) == 0
    assert dose_main(["--kinetics-dir", str(res / "kinetics"), "--labels", str(labels),
                      "--ct", str(res / "register" / "reference_ct.nii.gz"), "--out", str(res / "dose")]) == 0
    return sample, res, request.param


def _truth_dose(sample, res, tia_name, nuclide):
    tia, _ = read_image(sample / "truth" / tia_name)
    ct, _ = read_image(res / "register" / "reference_ct.nii.gz")
    labels, _ = read_image(sample / "truth" / "labels.nii.gz")
    names = {1: "kidney_left", 2: "kidney_right", 3: "liver", 4: "spleen"}
    if not tia.same_grid(read_image(res / "dose" / "dose.nii.gz")[0]):
        from pipeline.grid import resample_to

        tia = resample_to(tia, read_image(res / "dose" / "dose.nii.gz")[0], "linear", antialias=True)
    d = load_decay(nuclide)
    k = svalues_for_voxel_size(nuclide, tia.voxel_size_mm, "water")
    # the same organ-grid dose and photon transport as the stage (pipeline.dose.organgrid, photon_transport)
    near = near_electron_kernels(nuclide, tia.voxel_size_mm, ct.voxel_size_mm)
    out = compute_dose(tia, ct, labels, names, electron_energy_mev=d.electron_energy_mev,
                       photon_energy_mev=d.photon_energy_mev, injected_activity_mbq=7400.0,
                       svalues_mgy_per_mbq_s=k.electron_mgy_per_mbq_s, kernel_density_g_per_ml=k.density_g_per_ml,
                       near_electron=near, settings=DoseSettings(photon_method="transport"), decay=d)
    return {o.name: o.mean_gy for o in out.organs}


# History of the kidney criterion (it failed at -8.8 % until both were fixed): the label occupancy
# on the SPECT grid binned CT voxel centres, and with the sample CT's 5 mm slices on 4.8 mm SPECT
# voxels one SPECT slice in 25 got no label (and no voxel TIA): -4.4 % everywhere; and registration
# moved activity with a box + trilinear push that blurred the kidneys by 4-5 % per moved time point.
# Measured after the fixes: Lu-177 kidneys -1.4 / -1.3 %, liver -1.0 %, spleen -0.3 %; Y-90 (15 mm
# PSF) kidneys -1.5 / -1.5 %, liver -1.1 %, spleen -0.3 %.
@pytest.mark.parametrize("organ", ORGANS)
def test_organ_mean_dose_agrees_with_the_truth_dose_as_imaged_within_5_percent(chain, organ):
    sample, res, nuclide = chain
    got = {r["name"]: float(r["mean_gy"]) for r in csv.DictReader((res / "dose" / "organ_doses.csv").open())}
    truth = _truth_dose(sample, res, "spect_psf_tia.nii.gz", nuclide)
    unblurred = _truth_dose(sample, res, "tia.nii.gz", nuclide)
    for name in ORGANS:
        print(f"{nuclide} {name}: pipeline {got[name]:.4f} Gy, truth as imaged {truth[name]:.4f} Gy "
              f"({100 * (got[name] / truth[name] - 1):+.2f} %), unblurred truth {unblurred[name]:.4f} Gy "
              f"(partial-volume loss {100 * (truth[name] / unblurred[name] - 1):+.1f} %)")
    assert np.isfinite(list(unblurred.values())).all()
    # 5 %: the criterion for kidneys, liver and spleen
    assert got[organ] == pytest.approx(truth[organ], rel=0.05), organ
