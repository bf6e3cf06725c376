# Stage 3, segment: label map of the organs on the reference CT (`spectdose segment`).


rule segment:
    input:
        unpack(segment_inputs),
    output:
        labels="results/{patient}/segment/labels.nii.gz",
        vocabulary="results/{patient}/segment/labels.json",
        organs="results/{patient}/segment/organs.csv",
        qc_png="results/{patient}/segment/qc.png",
        qc="results/{patient}/segment/qc.json",
    params:
        out=lambda wildcards, output: results_dir(output.labels, 1),
        backend=config["segment"]["backend"],
        masks=segment_masks_flag,
        qc=config["segment"].get("qc", "fail"),
        atlas=config["segment"].get("atlas", "auto"),
        organ_lesions="" if config["segment"].get("organ_lesions", True) else "--no-organ-lesions",
    log:
        "results/{patient}/logs/segment.log",
    benchmark:
        "results/{patient}/benchmarks/segment.tsv"
    threads: stage_threads("segment")
    resources:
        mem_mb=stage_mem_mb("segment"),
        runtime=stage_runtime_min("segment"),
    conda:
        "../../environment.yml"
    shell:
        "OMP_NUM_THREADS={threads} NUMBA_NUM_THREADS={threads} "
        "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS={threads} "
        "spectdose segment --ct {input.ct} --spect {input.spect} --out {params.out} "
        "--backend {params.backend} {params.masks} --qc {params.qc} "
        "--atlas '{params.atlas}' {params.organ_lesions} > {log} 2>&1"
