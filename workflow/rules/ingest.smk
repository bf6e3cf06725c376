# Stage 1, ingest: DICOM/NIfTI scans to calibrated, timed volumes (`spectdose ingest`).
#
# A patient with a manifest is ingested one time point per job, so that a new scan adds one job
# and leaves the earlier ones alone (the manifest is an `ancient` input: editing it to add a scan
# does not make the earlier scans out of date). A patient given as one DICOM folder is ingested
# as a whole by a checkpoint; its time points are known once that has run.


rule ingest:
    input:
        unpack(ingest_inputs),
    output:
        ct="results/{patient}/ingest/{tp}/ct.nii.gz",
        ct_sidecar="results/{patient}/ingest/{tp}/ct.json",
        spect="results/{patient}/ingest/{tp}/spect.nii.gz",
        spect_sidecar="results/{patient}/ingest/{tp}/spect.json",
        timepoint="results/{patient}/ingest/{tp}/timepoint.json",
    wildcard_constraints:
        patient=alternatives(p for p in PATIENTS if PATIENTS[p].is_manifest),
    params:
        out=lambda wildcards, output: results_dir(output.ct, 2),
        overrides=ingest_flags,
    log:
        "results/{patient}/logs/ingest.{tp}.log",
    benchmark:
        "results/{patient}/benchmarks/ingest.{tp}.tsv"
    threads: stage_threads("ingest")
    resources:
        mem_mb=stage_mem_mb("ingest"),
        runtime=stage_runtime_min("ingest"),
    conda:
        "../../environment.yml"
    shell:
        "OMP_NUM_THREADS={threads} NUMBA_NUM_THREADS={threads} "
        "spectdose ingest {input.manifest} --patient-id {wildcards.patient} "
        "--time-point {wildcards.tp} --out {params.out} {params.overrides} > {log} 2>&1"


checkpoint ingest_folder:
    input:
        dicom=lambda wildcards: PATIENTS[wildcards.patient].input,
    output:
        manifest="results/{patient}/ingest/manifest.json",
    wildcard_constraints:
        patient=alternatives(p for p in PATIENTS if not PATIENTS[p].is_manifest),
    params:
        out=lambda wildcards, output: results_dir(output.manifest, 1),
        overrides=ingest_flags,
    log:
        "results/{patient}/logs/ingest.log",
    benchmark:
        "results/{patient}/benchmarks/ingest.tsv"
    threads: stage_threads("ingest")
    resources:
        mem_mb=stage_mem_mb("ingest"),
        runtime=stage_runtime_min("ingest"),
    conda:
        "../../environment.yml"
    shell:
        "OMP_NUM_THREADS={threads} NUMBA_NUM_THREADS={threads} "
        "spectdose ingest {input.dicom} --patient-id {wildcards.patient} "
        "--out {params.out} {params.overrides} > {log} 2>&1"
