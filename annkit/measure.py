"""How a setting is measured: one frozen :class:`Measure`, validated once.

``annkit evaluate``, the bench worker, tune, effort studies and policy evaluation all take a
Measure (k, mode, timed runs and their QPS tolerance, recall rule, search threads, clients)
instead of repeating these as keyword arguments and checking them each. A later kind of
workload (filters, stream steps) adds a field here, never a second scoring path.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from annkit.errors import InputError
from annkit.metrics import DEFAULT_RECALL_RULE, RECALL_RULES

MODES = ("batch", "single")
#: how filtered queries are searched: see annkit.filtering
FILTER_STRATEGIES = ("auto", "native", "acorn", "post", "subset")

#: default number of timed runs (the maximum: timing stops once stable), for evaluate, bench
#: and tune alike
DEFAULT_RUNS = 3
#: default stopping tolerance: stop once the two fastest runs' QPS differ by at most 5% of
#: the fastest (after at least 2 runs)
DEFAULT_QPS_TOLERANCE = 0.05


def check_recall_rule(rule: str) -> str:
    """``rule`` when it is a known recall rule, else a one-line InputError."""
    if rule not in RECALL_RULES:
        raise InputError(f"unknown recall rule {rule!r}: use {' or '.join(RECALL_RULES)}")
    return rule


def check_mode(mode: str) -> str:
    """``mode`` when it is batch or single, else a one-line InputError."""
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}: use batch or single")
    return mode


def check_concurrency(mode: str, search_threads: int, clients: int | None) -> None:
    """Refuse concurrency settings that do not fit together (InputError, one line)."""
    if search_threads < 1:
        raise InputError(f"--search-threads must be >= 1, got {search_threads}")
    if clients is not None and clients < 1:
        raise InputError(f"--clients must be >= 1, got {clients}")
    if clients is not None and search_threads > 1:
        raise InputError(
            "use either --search-threads (one batch, the engine's threads) or "
            "--clients (concurrent single-query callers), not both"
        )
    if clients is not None and mode != "single":
        raise InputError("--clients sends one query per call: use it with --mode single")
    if search_threads > 1 and mode != "batch":
        raise InputError("--search-threads applies to batch mode; in single mode use --clients")


def depth_name(top: int, among: int) -> str:
    """``10@100``: the key of recall at depth (``top``, ``among``) in a record."""
    return f"{top}@{among}"


def check_depth(top: int, among: int, k: int) -> None:
    """Refuse a recall depth ``top@among`` that a search for ``k`` cannot score (InputError,
    one line)."""
    if top < 1 or among < top:
        raise InputError(
            f"recall at {depth_name(top, among)}: use A@B with 1 <= A <= B (the true top-A "
            "among the first B returned)"
        )
    if among > k:
        raise InputError(
            f"recall at {depth_name(top, among)} counts among the first {among} results: "
            f"search with -k {among} or more (k is {k})"
        )


def parse_depths(texts: tuple[str, ...] | list[str]) -> tuple[tuple[int, int], ...]:
    """``("10@100", "1@10")`` -> ``((10, 100), (1, 10))``; InputError for text that is not
    A@B with whole numbers (the search depth is checked by :class:`Measure`)."""
    depths: list[tuple[int, int]] = []
    for text in texts:
        top, at, among = str(text).strip().partition("@")
        if not at or not top.strip().isdigit() or not among.strip().isdigit():
            raise InputError(f"recall depth {text!r}: use A@B, e.g. 10@100")
        depths.append((int(top), int(among)))
    return tuple(depths)


@dataclass(frozen=True)
class Measure:
    """How one setting is measured: recall@``k``; ``mode`` batch (one search call for all
    queries) or single (one query per call); at most ``runs`` timed runs, stopping once the
    two fastest agree within ``qps_tolerance`` (a fraction of the fastest; 0 = always
    ``runs``; in single mode with one caller, one pass over a seeded sample of queries grown
    until the 95% QPS interval's relative half-width is within ``qps_tolerance``, see
    :func:`annkit.timing.time_sample`); recall scored by ``recall_rule`` (tolerant:
    ann-benchmarks, from exact distances; strict: id overlap); ``search_threads`` of the
    engine's batch search, or ``clients`` concurrent single-query callers (None = one
    caller).

    Construction validates every field (InputError, one line), so a Measure in hand is
    always a valid one."""

    k: int = 10
    mode: str = "batch"
    runs: int = DEFAULT_RUNS
    qps_tolerance: float = DEFAULT_QPS_TOLERANCE
    recall_rule: str = DEFAULT_RECALL_RULE
    search_threads: int = 1
    clients: int | None = None
    #: how filtered queries are searched (see annkit.filtering); unfiltered queries ignore it
    filter_strategy: str = "auto"
    #: recall at other depths: (a, b) pairs, the share of the true top-a found among the
    #: first b returned (e.g. (10, 100) for a re-rank pipeline); each needs a <= b <= k
    depths: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        check_mode(self.mode)
        if self.filter_strategy not in FILTER_STRATEGIES:
            raise InputError(
                f"unknown filter strategy {self.filter_strategy!r}: use "
                f"{', '.join(FILTER_STRATEGIES)}"
            )
        if self.k < 1:
            raise InputError(f"k must be >= 1, got {self.k}")
        if self.runs < 1:
            raise InputError(f"runs must be >= 1, got {self.runs}")
        if not 0.0 <= self.qps_tolerance < 1.0:
            raise InputError(f"QPS tolerance must be in [0, 1), got {self.qps_tolerance}")
        check_concurrency(self.mode, self.search_threads, self.clients)
        check_recall_rule(self.recall_rule)
        for top, among in self.depths:
            check_depth(top, among, self.k)

    def but(self, **changes: Any) -> Measure:
        """A copy with ``changes`` (validated again)."""
        return replace(self, **changes)

    def record_fields(self) -> dict[str, Any]:
        """The fields of a run record this measure sets before anything is measured (those
        a failed run's record keeps: k, mode, runs, recall rule, concurrency)."""
        return {
            "k": self.k,
            "mode": self.mode,
            "runs": self.runs,
            "recall_rule": self.recall_rule,
            "search_threads": self.search_threads,
            "clients": self.clients,
        }
