# spectdose workflow: serial quantitative SPECT/CT to absorbed-dose maps, per patient.
#
#   ingest (per time point) -> register (per time point) -> segment (reference CT)
#     -> kinetics -> dose -> report
#
# One rule per stage, each calling `spectdose <stage>`; results in results/<patient>/<stage>/,
# logs in results/<patient>/logs/, benchmarks in results/<patient>/benchmarks/. A therapy course
# (a manifest listing `cycles`) runs every stage per cycle in results/<patient>/<cycle>/ and sums
# the cycles in results/<patient>/course/ (workflow/rules/course.smk).
#
#   snakemake --profile profiles/local                                   # every patient
#   snakemake --profile profiles/local results/P001/report/report.html   # one patient
#   snakemake --profile profiles/slurm                                   # a cohort on Slurm
#
# The configuration (config/config.yaml) and the patient sheet are validated against their JSON
# schemas before anything runs.

import os

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "config/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/common_courses.smk"


PATIENTS = load_patients(
    config["patients"], os.path.join(workflow.basedir, "config", "patients.schema.yaml")
)


# Reduced-protocol course cycles (one or two scans): run unit -> (method, earlier cycle's unit).
REDUCED = reduced_units(PATIENTS)


wildcard_constraints:
    # a run unit: a patient, or one cycle of a therapy course (<patient>/<cycle>)
    patient=alternatives(PATIENTS),
    course=alternatives(COURSES),
    tp=TIME_POINT_PATTERN,


include: "workflow/rules/ingest.smk"
include: "workflow/rules/register.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/kinetics.smk"
include: "workflow/rules/dose.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/uncertainty.smk"
include: "workflow/rules/course.smk"


rule all:
    default_target: True
    input:
        expand("results/{patient}/report/report.html", patient=sorted(PATIENTS)),
        expand("results/{course}/course/course.json", course=sorted(COURSES)),
