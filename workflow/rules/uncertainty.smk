# Uncertainty (`spectdose uncertainty`): the EANM propagation of every source (calibration,
# time-point activities with the fit covariance, registration, recovery, segmentation, S-values,
# density) to each organ dose, the EANM marrow dose, the kidney BED and the planned activity,
# analytically and by Monte Carlo. Its settings are the `uncertainty:` section of the config file
# (also a parameter here, so changing them reruns it). Target:
# results/<patient>/uncertainty/uncertainty.json, an input of the report (which shows its budget).
# A reduced-protocol course cycle (one or two scans) also reads the earlier cycle's fits.json its
# kinetics used: the uncertainty of that cycle's curve (shape or terminal rate) is propagated too.

# Its job's resources: `uncertainty.resources` (threads, mem_mb, runtime_min) in the config.
UNCERTAINTY_RESOURCES = {"threads": 1, "mem_mb": 3000, "runtime_min": 20, **(config.get("uncertainty") or {}).get("resources", {})}


rule uncertainty:
    input:
        fits="results/{patient}/kinetics/fits.json",
        labels="results/{patient}/segment/labels.nii.gz",
        organ_doses="results/{patient}/dose/organ_doses.csv",
        dose_ct="results/{patient}/dose/dose_ct.nii.gz",
        marrow="results/{patient}/dose/marrow.json",
        bed="results/{patient}/dose/bed.csv",
        planning="results/{patient}/dose/planning.json",
        registration_qc=registration_qc,
        prior=uncertainty_prior_fits,
    output:
        json="results/{patient}/uncertainty/uncertainty.json",
        budget="results/{patient}/uncertainty/budget.csv",
    params:
        patient_dir=lambda wildcards, output: results_dir(output.json, 2),
        out=lambda wildcards, output: results_dir(output.json, 1),
        config_file=dose_config_file(),
        settings=config.get("uncertainty") or {},
        prior=uncertainty_prior_flag,
    log:
        "results/{patient}/logs/uncertainty.log",
    benchmark:
        "results/{patient}/benchmarks/uncertainty.tsv"
    threads: UNCERTAINTY_RESOURCES["threads"]
    resources:
        mem_mb=lambda wildcards, attempt: UNCERTAINTY_RESOURCES["mem_mb"] * attempt,
        runtime=UNCERTAINTY_RESOURCES["runtime_min"],
    conda:
        "../../environment.yml"
    shell:
        "OMP_NUM_THREADS={threads} "
        "spectdose uncertainty --patient-dir {params.patient_dir} --out {params.out} "
        "--config {params.config_file} {params.prior} > {log} 2>&1"
