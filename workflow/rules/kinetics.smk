# Stage 4, kinetics: time-activity curves, fits and the time-integrated activity
# (`spectdose kinetics`). Depends on every registered time point of the patient. Its options are
# the `kinetics:` section of the config (voxel method, organ-level partial-volume correction).


rule kinetics:
    input:
        spects=registered_spects,
        labels="results/{patient}/segment/labels.nii.gz",
    output:
        tac="results/{patient}/kinetics/organ_tac.csv",
        fits="results/{patient}/kinetics/fits.json",
        tia="results/{patient}/kinetics/tia.nii.gz",
        tia_sidecar="results/{patient}/kinetics/tia.json",
    params:
        register_dir=lambda wildcards, input: results_dir(input.spects[0], 2),
        out=lambda wildcards, output: results_dir(output.tia, 1),
        options=kinetics_flags(),
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
