"""Streaming runbooks: a corpus that changes (inserts, deletes, replaces) with recall
measured at every search step against the exact truth of the live set.

- :mod:`annkit.stream.runbook`: big-ann-benchmarks' runbook format, read and checked.
- :mod:`annkit.stream.make`: runbooks of common shapes, seeded.
- :mod:`annkit.stream.truth`: exact truth of a live set, cached.
- :mod:`annkit.stream.runner`: the stream itself, resumable.
- :mod:`annkit.stream.records`: the per-step records and the report.
- :mod:`annkit.stream.plot`: recall over the steps.
"""

from annkit.stream.make import SHAPES, MadeRunbook, make_runbook
from annkit.stream.records import Drift, FreshBuild, SearchMeasure, StepRecord, StreamReport
from annkit.stream.runbook import LiveSet, Runbook, RunbookError, Step, read_runbook
from annkit.stream.runner import StreamEvent, StreamSettings, run_stream
from annkit.stream.truth import live_ground_truth

__all__ = [
    "SHAPES",
    "Drift",
    "FreshBuild",
    "LiveSet",
    "MadeRunbook",
    "Runbook",
    "RunbookError",
    "SearchMeasure",
    "Step",
    "StepRecord",
    "StreamEvent",
    "StreamReport",
    "StreamSettings",
    "live_ground_truth",
    "make_runbook",
    "read_runbook",
    "run_stream",
]
