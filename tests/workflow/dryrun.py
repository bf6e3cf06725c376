"""Parse the job listing of ``snakemake --dry-run --printshellcmds`` into records."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HEAD = re.compile(r"^(?:local)?(rule|checkpoint) (\w+):\s*$")
_FIELD = re.compile(r"^    (\w+): (.*)$")


@dataclass
class Job:
    rule: str
    fields: dict = field(default_factory=dict)
    shell: str = ""

    @property
    def wildcards(self) -> dict:
        text = self.fields.get("wildcards", "")
        return dict(item.split("=", 1) for item in text.split(", ") if "=" in item)

    @property
    def outputs(self) -> list[str]:
        text = self.fields.get("output", "")
        return [item for item in text.split(", ") if item]

    @property
    def inputs(self) -> list[str]:
        text = self.fields.get("input", "")
        return [item for item in text.split(", ") if item]

    @property
    def key(self) -> tuple:
        return (self.rule, tuple(sorted(self.wildcards.items())))


def parse_jobs(text: str) -> list[Job]:
    """Jobs of a dry run's output (rule name, fields such as input/output/wildcards, shell)."""
    jobs, job = [], None
    for line in text.splitlines():
        head = _HEAD.match(line)
        if head:
            job = Job(head.group(2))
            jobs.append(job)
            continue
        if job is None:
            continue
        match = _FIELD.match(line)
        if match:
            job.fields.setdefault(match.group(1), match.group(2))
        elif line.startswith("Shell command: "):
            job.shell = line[len("Shell command: "):].strip()
    return jobs
