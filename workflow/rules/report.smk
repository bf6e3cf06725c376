# Last stage, report: one self-contained HTML page per patient (`spectdose report`), built from
# what the stages wrote.


rule report:
    input:
        organ_doses="results/{patient}/dose/organ_doses.csv",
        dvh="results/{patient}/dose/dvh.csv",
        marrow="results/{patient}/dose/marrow.json",
        bed="results/{patient}/dose/bed.csv",
        planning="results/{patient}/dose/planning.json",
        dose_sidecar="results/{patient}/dose/dose.json",
        provenance="results/{patient}/dose/dose_provenance.json",
        fits="results/{patient}/kinetics/fits.json",
        organs="results/{patient}/segment/organs.csv",
        segment_qc="results/{patient}/segment/qc.json",
        registration_qc=registration_qc,
    output:
        html="results/{patient}/report/report.html",
    params:
        patient_dir=lambda wildcards, output: results_dir(output.html, 2),
    log:
        "results/{patient}/logs/report.log",
    benchmark:
        "results/{patient}/benchmarks/report.tsv"
    threads: stage_threads("report")
    resources:
        mem_mb=stage_mem_mb("report"),
        runtime=stage_runtime_min("report"),
    conda:
        "../../environment.yml"
    shell:
        "spectdose report --patient-dir {params.patient_dir} --out {output.html} > {log} 2>&1"
