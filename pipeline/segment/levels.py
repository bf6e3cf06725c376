"""Naming of the vertebral segments by a vote of independent anatomical evidences.

:func:`pipeline.segment.spine.analyse_spine` finds the vertebral segments
(bone between two discs, listed from inferior up). Which segment is L1 is
then proposed by every piece of evidence that is present in the field of view:

- ``sacrum``: the S1 segment (wide alae, or the long fused sacrum); L1 lies
  ``lumbar_count`` segments above it;
- ``iliac_crests``: the intercristal line (the highest points of the two iliac
  wings). Chakraverty et al., J Anat 2007;210:232-236 (MRI of 50 adults): the
  line crosses the L4 body or the L4-L5 interspace in most adults (about
  80-90 %, the rest mostly L3-L4 or L5). Tolerance used here: the vertebra
  whose body contains the line, or whose lower endplate lies at most
  :data:`CREST_BELOW_MM` (the disc plus the top of L5) above it, is the one
  two above the sacrum (L4 with 5 lumbar vertebrae);
- ``ribs``: the lowest rib-bearing vertebra (a rib head within 10 mm of its
  body) is T12. A short floating 12th rib that is missed, or an L1
  transverse process taken for a rib, moves it by one: the vote catches this;
- ``manual``: an operator's anchor (``"L3@-215"``: the vertebra whose body
  contains z = -215 mm is L3). It overrides the vote.

Vertebral body heights (``body_heights``: lumbar bodies 18-45 mm on the
working grid and taller than the thoracic ones) are a consistency check that
proposes nothing. The psoas or the kidneys are not used: their level varies.

Decision: at least two evidences that agree and none that disagrees: pass; evidences
that disagree, or one alone: fail (the built-in segmenter refuses, with one line naming
the disagreement and the override; with an atlas, the atlas's L3 is one more evidence).
A manual anchor decides: pass when no automatic evidence disagrees, else warn. With a
non-default ``lumbar_count`` (the operator's statement of transitional anatomy) a
disagreement is a warning and the pelvic evidences (sacrum, then iliac crests) name
the levels.

Why no majority and no single landmark: the landmarks are counted on the same discs,
so two of them can be off together. ICRP-110 AF and AM, rules only, 100 fields of view
and grids (trunk, and lung bases + 20-80 mm down to 0-40 mm into the sacrum; 2, 3 and
4 mm, and the phantoms' own slices rebinned to 2 mm): the sacrum and the ribs
outvoting iliac crests one level off (a rule of an earlier version) named the levels
one vertebra wrong in 3 of its 5 cases (L3 22-39 mm off, with a warn only); the sacrum
with the crests against the ribs were wrong in 2 of 5; one landmark alone (the iliac
crests or the ribs) named L3 right in 5 of 11.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Evidence", "LevelVote", "name_at", "position_of", "parse_vertebra_level", "vote",
           "body_height_check", "CREST_BELOW_MM"]

#: The intercristal line may lie this far below the lower endplate of L4 (L4-L5 disc, top of L5), mm.
CREST_BELOW_MM = 14.0


def name_at(pos: int, lumbar_count: int = 5) -> str:
    """Name of the segment ``pos`` places above L1 (0 = L1, -1 = L2, +1 = T12, -lumbar_count = S1)."""
    if pos <= 0:
        n = 1 - pos
        if n <= lumbar_count:
            return f"L{n}"
        return "S1" if n == lumbar_count + 1 else "?"
    if pos <= 12:
        return f"T{13 - pos}"
    if pos <= 19:
        return f"C{20 - pos}"
    return "?"


def position_of(name: str, lumbar_count: int = 5) -> int:
    """Inverse of :func:`name_at`."""
    m = re.fullmatch(r"([CTLS])(\d+)", name.strip().upper())
    if not m:
        raise ValueError(f"not a vertebra name: {name!r} (e.g. L3, T12, S1)")
    kind, n = m.group(1), int(m.group(2))
    if kind == "L" and 1 <= n <= lumbar_count:
        return 1 - n
    if kind == "S" and n == 1:
        return -lumbar_count
    if kind == "T" and 1 <= n <= 12:
        return 13 - n
    if kind == "C" and 1 <= n <= 7:
        return 20 - n
    raise ValueError(f"vertebra {name!r} does not exist with {lumbar_count} lumbar vertebrae")


def parse_vertebra_level(text) -> tuple[str, float]:
    """``"L3@-215"`` or ``("L3", -215.0)`` -> ``("L3", -215.0)`` (RAS+ superior coordinate, mm)."""
    if isinstance(text, (tuple, list)) and len(text) == 2:
        name, z = text
    else:
        m = re.fullmatch(r"\s*([A-Za-z]\d+)\s*@\s*([-+]?\d+(?:\.\d*)?)\s*(?:mm)?\s*", str(text))
        if not m:
            raise ValueError(f"vertebra level {text!r}: expected NAME@Z_MM, e.g. L3@-215")
        name, z = m.group(1), m.group(2)
    name = str(name).strip().upper()
    position_of(name, 6)  # validates the name
    return name, float(z)


@dataclass
class Evidence:
    """What one piece of evidence says about the naming."""

    name: str
    available: bool
    l1_index: int | None = None  # index (in the inferior-to-superior segment list) of L1 it proposes
    detail: str = ""
    agrees: bool | None = None
    proposes: dict = field(default_factory=dict)  # e.g. {"L3": [z_lo, z_hi]}
    values: dict = field(default_factory=dict)  # measured quantities (z of the crest, heights...)

    def to_dict(self) -> dict:
        return {"name": self.name, "available": self.available, "proposes": self.proposes,
                "l1_segment_index": self.l1_index, "agrees": self.agrees, "detail": self.detail,
                **({"values": self.values} if self.values else {})}


@dataclass
class LevelVote:
    """Outcome of :func:`vote`; ``to_dict()`` is the ``levels`` entry of segment/qc.json."""

    evidence: list
    decision: str  # pass | warn | fail
    message: str
    l1_index: int | None
    lumbar_count: int = 5
    #: the levels are named by landmarks that agree (a pass); False for one evidence, a refusal or
    #: a manual anchor
    settled: bool = False

    def to_dict(self) -> dict:
        return {"evidence": [e.to_dict() for e in self.evidence], "decision": self.decision,
                "message": self.message, "lumbar_count": self.lumbar_count, "settled": self.settled}


def _proposal(l1: int, seg_z, lumbar_count: int, names=("L2", "L3", "L4")) -> dict:
    out = {}
    for n in names:
        s = l1 + position_of(n, lumbar_count)
        if 0 <= s < len(seg_z):
            out[n] = [round(float(seg_z[s][0]), 1), round(float(seg_z[s][1]), 1)]
    return out


def _describe(e: Evidence, lumbar_count: int) -> str:
    if e.proposes.get("L3"):
        z = e.proposes["L3"]
        return f"{e.name} puts L3 at z {z[0]:.0f}..{z[1]:.0f} mm"
    return f"{e.name} puts L1 at segment {e.l1_index}"


def vote(evidences: list, seg_z, lumbar_count: int = 5, manual: Evidence | None = None,
         lumbar_count_manual: bool = False) -> LevelVote:
    """Combine the evidences (see the module docstring for the rule).

    Parameters
    ----------
    evidences : list of Evidence
        Automatic evidences; those with ``l1_index`` None propose nothing (checks).
    seg_z : sequence of (z_lo, z_hi)
        Each segment's z range, mm (for the proposals and messages).
    manual : Evidence, optional
        The operator's anchor; overrides the vote.
    lumbar_count_manual : bool
        ``lumbar_count`` was set by the operator (transitional anatomy).
    """
    for e in evidences + ([manual] if manual else []):
        if e.available and e.l1_index is not None:
            e.proposes = _proposal(e.l1_index, seg_z, lumbar_count)
    voters = [e for e in evidences if e.available and e.l1_index is not None]
    everything = list(evidences) + ([manual] if manual else [])
    override = ("set vertebra_level='L3@<z mm>' (the vertebra whose body contains z is L3; CLI "
                "--vertebra-level) or lumbar_count for transitional anatomy")
    if manual is not None:
        l1 = manual.l1_index
        manual.agrees = True
        against = []
        for e in voters:
            e.agrees = e.l1_index == l1
            if not e.agrees:
                against.append(e.name)
        if against:
            return LevelVote(everything, "warn",
                             f"levels from the manual anchor ({manual.detail}); "
                             f"{', '.join(against)} disagree(s)", l1, lumbar_count)
        return LevelVote(everything, "pass", f"levels from the manual anchor ({manual.detail})"
                         + (f"; {', '.join(e.name for e in voters)} agree" if voters else ""), l1, lumbar_count)
    if not voters:
        return LevelVote(everything, "fail", "vertebral levels unknown: neither the sacrum, the iliac crests "
                         f"nor a rib-bearing vertebra was found in the field of view; {override}",
                         None, lumbar_count)
    proposals = sorted({e.l1_index for e in voters})
    if len(proposals) == 1:
        l1 = proposals[0]
        for e in voters:
            e.agrees = True
        if len(voters) == 1:
            # one landmark alone named L3 right in 5 of 11 ICRP-110 fields of view (module docstring)
            voters[0].agrees = None  # nothing to agree with; it names nothing
            return LevelVote(everything, "fail", f"vertebral levels from one landmark only ("
                             f"{_describe(voters[0], lumbar_count)}), none to cross-check it; {override}",
                             None, lumbar_count)
        return LevelVote(everything, "pass", "vertebral levels: " + ", ".join(e.name for e in voters) + " agree",
                         l1, lumbar_count, settled=True)
    # disagreement
    if lumbar_count_manual:
        pelvic = [e for e in voters if e.name in ("sacrum", "iliac_crests")]
        l1 = pelvic[0].l1_index if pelvic else voters[0].l1_index
        for e in voters:
            e.agrees = e.l1_index == l1
        against = [e.name for e in voters if not e.agrees]
        return LevelVote(everything, "warn",
                         f"level cross-check failed with lumbar_count={lumbar_count}: "
                         + "; ".join(_describe(e, lumbar_count) for e in voters)
                         + f"; levels from {[e.name for e in voters if e.agrees][0]} "
                         f"({', '.join(against)} disagree)", l1, lumbar_count)
    counts = {p: sum(e.l1_index == p for e in voters) for p in proposals}
    majority = max(counts, key=lambda p: (counts[p], -p))
    for e in voters:
        e.agrees = e.l1_index == majority and counts[majority] > len(voters) / 2
    apart = max(proposals) - min(proposals)
    msg = ("vertebral levels disagree: " + "; ".join(_describe(e, lumbar_count) for e in voters)
           + f" ({apart} level{'s' if apart > 1 else ''} apart); {override}")
    return LevelVote(everything, "fail", msg, None, lumbar_count)


def body_height_check(seg_z, l1: int | None, lumbar_count: int = 5) -> Evidence:
    """Consistency of the named segments' heights (proposes nothing).

    Lumbar bodies are about 25-35 mm high and grow downwards, thoracic ones are
    smaller (T10-T12 about 20-26 mm). A segment here spans from disc centre to
    disc centre minus the disc slices, so the accepted lumbar range is wide:
    18-45 mm. Fails when a named lumbar segment is outside it (a merged or
    split vertebra) or when the median named lumbar body is shorter than the
    median named thoracic T9-T12 one by more than 2 mm (medians: one thoracic
    segment of two vertebrae whose disc was missed, 48 mm on the real GE CT at
    3 mm, does not make the lumbar bodies look small).
    """
    e = Evidence("body_heights", available=False, detail="consistency check only")
    if l1 is None:
        return e
    h = {name_at(s - l1, lumbar_count): float(z[1] - z[0]) for s, z in enumerate(seg_z)}
    lum = {n: v for n, v in h.items() if n.startswith("L")}
    tho = {n: v for n, v in h.items() if n in ("T9", "T10", "T11", "T12")}
    if len(lum) < 2:
        return e
    e.available = True
    e.values = {n: round(v, 1) for n, v in h.items() if n in lum or n in tho}
    bad = [n for n, v in lum.items() if not 18.0 <= v <= 45.0]
    problems = []
    if bad:
        problems.append(f"lumbar height out of 18-45 mm: {', '.join(f'{n} {lum[n]:.0f} mm' for n in bad)}")
    if tho and np.median(list(lum.values())) < np.median(list(tho.values())) - 2.0:
        problems.append("named lumbar bodies are smaller than the thoracic ones")
    e.agrees = not problems
    e.detail = "; ".join(problems) if problems else "lumbar heights 18-45 mm, not smaller than thoracic"
    return e
