# Stage 2, register: each time point onto the reference time point (`spectdose register`), one
# job per time point; the reference itself is a job too (it writes its QC and the dose grid).


rule register:
    input:
        unpack(register_inputs),
    output:
        spect="results/{patient}/register/{tp}/spect.nii.gz",
        spect_sidecar="results/{patient}/register/{tp}/spect.json",
        transform="results/{patient}/register/{tp}/transform.tfm",
        qc="results/{patient}/register/{tp}/qc.json",
        qc_png="results/{patient}/register/{tp}/qc.png",
    params:
        ingest_dir=lambda wildcards, input: results_dir(input.ct, 2),
        out=lambda wildcards, output: results_dir(output.spect, 2),
        reference=lambda wildcards: reference_time_point(wildcards.patient),
        options=register_flags(),
    log:
        "results/{patient}/logs/register.{tp}.log",
    benchmark:
        "results/{patient}/benchmarks/register.{tp}.tsv"
    threads: stage_threads("register")
    resources:
        mem_mb=stage_mem_mb("register"),
        runtime=stage_runtime_min("register"),
    conda:
        "../../environment.yml"
    shell:
        "OMP_NUM_THREADS={threads} NUMBA_NUM_THREADS={threads} "
        "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS={threads} "
        "spectdose register --ingest-dir {params.ingest_dir} --out {params.out} "
        "--reference {params.reference} --time-point {wildcards.tp} {params.options} "
        "> {log} 2>&1"
