# Last stage, report (`spectdose report`): one self-contained HTML page per patient, built from
# what the stages wrote, with fused CT/dose figures (report/figures/), the same report as PDF
# (report/report.pdf, printed by headless Chromium when it is installed; without Chromium the
# log says "HTML only") and a viewer bundle for ITK-SNAP and 3D Slicer (report/viewer/). The PDF
# and the bundle are not declared outputs: the rule succeeds on a machine without Chromium.


rule report:
    input:
        organ_doses="results/{patient}/dose/organ_doses.csv",
        dvh="results/{patient}/dose/dvh.csv",
        marrow="results/{patient}/dose/marrow.json",
        bed="results/{patient}/dose/bed.csv",
        planning="results/{patient}/dose/planning.json",
        dose_sidecar="results/{patient}/dose/dose.json",
        dose_ct="results/{patient}/dose/dose_ct.nii.gz",
        labels="results/{patient}/segment/labels.nii.gz",
        vocabulary="results/{patient}/segment/labels.json",
        ct=reference_ct,
        provenance="results/{patient}/dose/dose_provenance.json",
        fits="results/{patient}/kinetics/fits.json",
        organs="results/{patient}/segment/organs.csv",
        segment_qc="results/{patient}/segment/qc.json",
        uncertainty="results/{patient}/uncertainty/uncertainty.json",
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
