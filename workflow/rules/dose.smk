# Stage 5, dose: absorbed-dose maps, organ doses, DVHs, marrow, BED and planning
# (`spectdose dose`). Its settings are the `dose:` section of the config file; they are also a
# parameter here so that changing them reruns this stage. With `dose.dose_rate_maps: true` it
# also reads the registered time points and writes dose_rate_<tp>.nii.gz (Gy/h) beside dose.nii.gz.


rule dose:
    input:
        tia="results/{patient}/kinetics/tia.nii.gz",
        fits="results/{patient}/kinetics/fits.json",
        labels="results/{patient}/segment/labels.nii.gz",
        ct=reference_ct,
        # the registered time points, only when dose-rate maps are asked for
        spects=lambda wildcards: registered_spects(wildcards) if config["dose"].get("dose_rate_maps") else [],
    output:
        dose="results/{patient}/dose/dose.nii.gz",
        dose_sidecar="results/{patient}/dose/dose.json",
        dose_ct="results/{patient}/dose/dose_ct.nii.gz",
        dose_ct_sidecar="results/{patient}/dose/dose_ct.json",
        organ_doses="results/{patient}/dose/organ_doses.csv",
        dvh="results/{patient}/dose/dvh.csv",
        dvh_png="results/{patient}/dose/dvh.png",
        marrow="results/{patient}/dose/marrow.json",
        bed="results/{patient}/dose/bed.csv",
        planning="results/{patient}/dose/planning.json",
        provenance="results/{patient}/dose/dose_provenance.json",
    params:
        kinetics_dir=lambda wildcards, input: results_dir(input.tia, 1),
        out=lambda wildcards, output: results_dir(output.dose, 1),
        config_file=dose_config_file(),
        sex=patient_sex,
        settings=config["dose"],
        dose_rate=lambda wildcards, input: (
            f" --register-dir {results_dir(input.spects[0], 2)} --dose-rate" if input.spects else ""
        ),
    log:
        "results/{patient}/logs/dose.log",
    benchmark:
        "results/{patient}/benchmarks/dose.tsv"
    threads: stage_threads("dose")
    resources:
        mem_mb=stage_mem_mb("dose"),
        runtime=stage_runtime_min("dose"),
    conda:
        "../../environment.yml"
    shell:
        "OMP_NUM_THREADS={threads} NUMBA_NUM_THREADS={threads} "
        "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS={threads} "
        "spectdose dose --kinetics-dir {params.kinetics_dir} --labels {input.labels} "
        "--ct {input.ct} --out {params.out} --config {params.config_file} --sex {params.sex} "
        "--threads {threads}{params.dose_rate} "
        "> {log} 2>&1"
