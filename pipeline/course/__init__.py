"""Therapy courses: cycles of one patient summed, allowances to the limits, the next activity.

``spectdose course`` (:mod:`.cli`) reads every cycle's results; :mod:`.summary` is the pure core.
"""
