# Stage 4, kinetics: time-activity curves, fits and the time-integrated activity
# (`spectdose kinetics`). Depends on every registered time point of the patient. Its options are
# the `kinetics:` section of the config (voxel method, partial-volume correction). With a
# voxel-level correction (pvc: rbv or iy) tia.nii.gz is the corrected map, which the dose stage
# reads, and tia_uncorrected.nii.gz keeps the uncorrected one.

KINETICS = config.get("kinetics") or {}
VOXEL_PVC = KINETICS.get("pvc", "none") in ("rbv", "iy")
KINETICS_PSF = KINETICS.get("psf_fwhm_mm")
# `spectdose kinetics` flags (a three-value PSF FWHM as three numbers)
KINETICS_OPTIONS = " ".join(
    ([f"--voxel-method {shlex.quote(str(KINETICS['voxel_method']))}"] if KINETICS.get("voxel_method") else [])
    + ([f"--voxel-head {shlex.quote(str(KINETICS['voxel_head']))}"] if KINETICS.get("voxel_head") else [])
    + ([f"--pvc {shlex.quote(str(KINETICS['pvc']))}"] if KINETICS.get("pvc", "none") != "none" else [])
    + (["--psf-fwhm-mm " + " ".join(shlex.quote(str(v)) for v in
                                    (KINETICS_PSF if isinstance(KINETICS_PSF, list) else [KINETICS_PSF]))]
       if KINETICS.get("pvc", "none") != "none" and KINETICS_PSF is not None else [])
    + ([f"--psf-source {shlex.quote(str(KINETICS['psf_source']))}"]
       if KINETICS.get("pvc", "none") != "none" and KINETICS.get("psf_source") else [])
)


rule kinetics:
    input:
        spects=registered_spects,
        labels="results/{patient}/segment/labels.nii.gz",
    output:
        tac="results/{patient}/kinetics/organ_tac.csv",
        fits="results/{patient}/kinetics/fits.json",
        tia="results/{patient}/kinetics/tia.nii.gz",
        tia_sidecar="results/{patient}/kinetics/tia.json",
        **({"tia_uncorrected": "results/{patient}/kinetics/tia_uncorrected.nii.gz"} if VOXEL_PVC else {}),
    params:
        register_dir=lambda wildcards, input: results_dir(input.spects[0], 2),
        out=lambda wildcards, output: results_dir(output.tia, 1),
        options=KINETICS_OPTIONS,
    log:
        "results/{patient}/logs/kinetics.log",
    benchmark:
        "results/{patient}/benchmarks/kinetics.tsv"
    threads: stage_threads("kinetics")
    resources:
        mem_mb=stage_mem_mb("kinetics"),
        runtime=stage_runtime_min("kinetics"),
    conda:
        "../../environment.yml"
    shell:
        "OMP_NUM_THREADS={threads} NUMBA_NUM_THREADS={threads} "
        "spectdose kinetics --register-dir {params.register_dir} --labels {input.labels} "
        "--out {params.out} {params.options} > {log} 2>&1"
