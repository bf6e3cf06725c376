# Therapy courses (a patient whose manifest lists `cycles`). Every stage runs per cycle as the run
# unit <patient>/<cycle> (results/<patient>/<cycle>/<stage>/); here:
#
# - kinetics_reduced: a cycle with one or two scans gets its organ TIA from the scans and the
#   kinetics of an earlier full-protocol cycle (`kinetics.reduced`: prior_cycle, madsen) or by
#   Hanscheid's formula (`spectdose kinetics --reduced`); stated in its fits.json;
# - course: the course summary, results/<patient>/course/ (`spectdose course`): dose and BED per
#   cycle and summed, remaining allowance to each limit, the next cycle's activity, predicted
#   against delivered dose; with `course.cumulative_dose_map` the cycles' dose maps summed on the
#   first cycle's reference CT (dose_ct_sum.nii.gz) and the course DVHs (dvh.csv). Adding a cycle
#   to the course manifest runs that cycle and this rule only.


rule kinetics_reduced:
    input:
        spects=registered_spects,
        labels="results/{patient}/segment/labels.nii.gz",
        prior=prior_fits,
    output:
        tac="results/{patient}/kinetics/organ_tac.csv",
        fits="results/{patient}/kinetics/fits.json",
        tia="results/{patient}/kinetics/tia.nii.gz",
        tia_sidecar="results/{patient}/kinetics/tia.json",
        **({"tia_uncorrected": "results/{patient}/kinetics/tia_uncorrected.nii.gz"} if VOXEL_PVC else {}),
    wildcard_constraints:
        patient=alternatives(REDUCED),
    params:
        register_dir=lambda wildcards, input: results_dir(input.spects[0], 2),
        out=lambda wildcards, output: results_dir(output.tia, 1),
        options=KINETICS_OPTIONS,
        reduced=reduced_flags,
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
        "--out {params.out} {params.options} {params.reduced} > {log} 2>&1"


ruleorder: kinetics_reduced > kinetics


rule course:
    input:
        unpack(course_inputs),
    output:
        json="results/{course}/course/course.json",
        csv="results/{course}/course/course.csv",
        **({"dose_sum": "results/{course}/course/dose_ct_sum.nii.gz", "dvh": "results/{course}/course/dvh.csv"}
           if (config.get("course") or {}).get("cumulative_dose_map", True) else {}),
    params:
        results=lambda wildcards: f"{RESULTS}/{wildcards.course}",
        out=lambda wildcards, output: results_dir(output.json, 1),
        options=course_flags(),
        config_file=dose_config_file(),
    log:
        "results/{course}/logs/course.log",
    benchmark:
        "results/{course}/benchmarks/course.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../environment.yml"
    shell:
        "spectdose course --course-manifest {input.manifest} --results-dir {params.results} "
        "--out {params.out} --config {params.config_file} {params.options} > {log} 2>&1"
