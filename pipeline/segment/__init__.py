"""``spectdose segment``: the patient's label map on the reference CT.

Backends: user masks (NIfTI label maps, DICOM SEG, DICOM RTSTRUCT, a
TotalSegmentator output folder), TotalSegmentator itself when installed with
its weights on disk, and a built-in weights-free segmenter (the default).
Label ids follow DESIGN.md (see :mod:`pipeline.segment.labels`).
"""
