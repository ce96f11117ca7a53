"""Parameter sweeps: recall@k against QPS over engines x build x query settings.

:func:`load_sweep` reads a sweep file, :func:`run_sweep` measures it into a results folder,
:func:`build_report` / :func:`report_results` summarise it, :func:`plot_sweep` draws it and
:func:`compare_results` checks it against a baseline sweep (the regression gate).
Per-query effort policies (trained files, or cross-fitted ones the sweep trains) are measured
beside the uniform query settings as their own series (:mod:`annkit.bench.policies`).
"""

from annkit.bench.compare import Comparison, GateThresholds, compare_records, compare_results
from annkit.bench.pareto import dominates, pareto_front
from annkit.bench.report import THRESHOLDS, build_report, load_results, report_results
from annkit.bench.runner import SweepEvent, SweepOutcome, describe_setting, run_sweep
from annkit.bench.spec import (
    DEFAULT_SWEEP,
    BuildSetting,
    PolicySetting,
    QuerySetting,
    SweepError,
    SweepSpec,
    load_sweep,
    make_run_id,
    parse_sweep,
)
from annkit.bench.store import REQUIRED_KEYS, ResultsStore, read_runs

__all__ = [
    "DEFAULT_SWEEP",
    "REQUIRED_KEYS",
    "THRESHOLDS",
    "BuildSetting",
    "Comparison",
    "GateThresholds",
    "PolicySetting",
    "QuerySetting",
    "ResultsStore",
    "SweepError",
    "SweepEvent",
    "SweepOutcome",
    "SweepSpec",
    "build_report",
    "compare_records",
    "compare_results",
    "describe_setting",
    "dominates",
    "load_results",
    "load_sweep",
    "make_run_id",
    "pareto_front",
    "parse_sweep",
    "read_runs",
    "report_results",
    "run_sweep",
]


def plot_sweep(*args, **kwargs):  # type: ignore[no-untyped-def]
    """See :func:`annkit.bench.plot.plot_sweep` (imported lazily: matplotlib is slow)."""
    from annkit.bench.plot import plot_sweep as draw

    return draw(*args, **kwargs)
