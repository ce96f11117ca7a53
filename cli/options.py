"""Options shared by several commands, each defined once."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import click

from annkit.evaluate import DEFAULT_QPS_TOLERANCE, DEFAULT_RUNS
from annkit.measure import FILTER_STRATEGIES
from annkit.sources import default_data_notice
from annkit.types import METRIC_ALIASES


def parse_params(values: tuple[str, ...]) -> dict[str, str]:
    """``("M=16", "ef_construction=200")`` -> ``{"M": "16", ...}``; engines coerce types."""
    params: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="-p")
        params[name.strip()] = value.strip()
    return params


def parse_cuts(text: str) -> tuple[float, ...]:
    """``"0.2,0.6"`` -> ``(0.2, 0.6)``: strictly increasing shares in (0, 1)."""
    try:
        cuts = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise click.BadParameter(
            f"expected numbers like 0.2,0.6, got {text!r}", param_hint="--bands"
        ) from None
    if not cuts or any(not 0 < c < 1 for c in cuts) or list(cuts) != sorted(set(cuts)):
        raise click.BadParameter(
            f"cut points must increase strictly within (0, 1), got {text!r}", param_hint="--bands"
        )
    return cuts


def parse_grid(text: str | None, option: str) -> list[str] | None:
    """``"10,20,40"`` -> ``["10", "20", "40"]`` (the engine's spec coerces them); None stays."""
    if text is None:
        return None
    values = [part.strip() for part in text.split(",") if part.strip()]
    if not values:
        raise click.BadParameter(
            f"expected comma-separated values, got {text!r}", param_hint=option
        )
    return values


def parse_build_grid(items: tuple[str, ...]) -> dict[str, list[str]] | None:
    """``("M=8,16", "ef_construction=100")`` -> ``{"M": ["8", "16"], ...}``; None when empty."""
    if not items:
        return None
    grid: dict[str, list[str]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        parts = [part.strip() for part in values.split(",") if part.strip()]
        if not sep or not name.strip() or not parts:
            raise click.BadParameter(
                f"expected NAME=V1,V2,..., got {item!r}", param_hint="--build-grid"
            )
        grid.setdefault(name.strip(), []).extend(parts)
    return grid


def param_option(help_text: str) -> Callable[[Any], Any]:
    return click.option(
        "-p", "--param", "params", multiple=True, metavar="NAME=VALUE", help=help_text
    )


metric_option = click.option(
    "--metric",
    type=click.Choice(sorted(METRIC_ALIASES), case_sensitive=False),
    default=None,
    help="Distance: euclidean, angular (cosine) or ip (dot). Default: the one the data "
    "files declare (an index's own metric where the files say nothing); files that "
    "declare none, or disagree, need it.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")

RECALL_RULE_HELP = (
    "How recall@k is scored: tolerant (ann-benchmarks: a returned neighbour "
    "counts when its exact distance is within the k-th true distance + 1e-3) "
    "or strict (plain overlap of the returned ids with the true top-k ids)."
)


def recall_option(default: str | None = "tolerant") -> Callable[[Any], Any]:
    """``--recall tolerant|strict`` (default None in bench: the sweep file's choice)."""
    return click.option(
        "--recall",
        "recall_rule",
        type=click.Choice(["tolerant", "strict"]),
        default=default,
        show_default=default is not None,
        help=RECALL_RULE_HELP
        if default is not None
        else RECALL_RULE_HELP + " Default: the sweep's [bench] recall, else tolerant.",
    )


quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
threads_option = click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Threads for building (default: all cores).",
)
search_work_threads_option = click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Threads for the exact search (default: all cores).",
)

search_threads_option = click.option(
    "--search-threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Threads of the engine's own batch search (batch mode); recall is the same as with "
    "one thread.",
)
clients_option = click.option(
    "--clients",
    type=click.IntRange(min=1),
    default=None,
    metavar="C",
    help="C concurrent clients, each sending one query per call (single mode): QPS and "
    "p50/p95/p99 latency under that load.",
)

LOCAL_RAY = "local"


def ray_option(help_text: str) -> Callable[[Any], Any]:
    """``--ray`` (a new local Ray instance) or ``--ray=HOST:PORT`` (a running cluster)."""
    return click.option(
        "--ray",
        "ray_address",
        is_flag=False,
        flag_value=LOCAL_RAY,
        default=None,
        metavar="[ADDRESS]",
        callback=_check_ray_address,
        help=help_text,
    )


def _check_ray_address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """None (no Ray), "local", or an address; a file name taken as the address is an error."""
    if value is None or value == LOCAL_RAY or value == "auto":
        return value
    if ":" not in value:
        raise click.BadParameter(
            f"expected HOST:PORT, got {value!r} (write --ray=HOST:PORT, or "
            "put a bare --ray after the file arguments)",
            param_hint="--ray",
        )
    return value


def echo_notices(*notices: str | None) -> None:
    """Each notice (a library's one-line message to the user) on its own stderr line."""
    for notice in notices:
        if notice:
            click.echo(notice, err=True)


max_queries_option = click.option(
    "--max-queries",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Use a seeded random sample of N queries (seed 0), e.g. to try a slow command.",
)


LABEL_FILE_HELP = (
    "Labels of the {what}: a big-ann-benchmarks .spmat file, or an HDF5 file's {group} "
    "group. A query's filter is the AND of its labels (none: unfiltered)."
)
#: the keyword arguments the label options give a command
LABEL_KWARGS = ("base_labels_file", "query_labels_file")


def label_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--base-labels FILE`` / ``--query-labels FILE``, passed to the command as
    ``base_labels_file`` / ``query_labels_file`` (for ``open_dataset``'s ``base_labels`` /
    ``query_labels``)."""
    func = click.option(
        "--query-labels",
        "query_labels_file",
        type=click.Path(dir_okay=False),
        default=None,
        metavar="FILE",
        help=LABEL_FILE_HELP.format(what="queries", group="test_labels"),
    )(func)
    return click.option(
        "--base-labels",
        "base_labels_file",
        type=click.Path(dir_okay=False),
        default=None,
        metavar="FILE",
        help=LABEL_FILE_HELP.format(what="base vectors", group="train_labels"),
    )(func)


def _accepts(func: Callable[..., Any], name: str) -> bool:
    parameters = inspect.signature(func).parameters
    return name in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


filter_strategy_option = click.option(
    "--filter-strategy",
    type=click.Choice(FILTER_STRATEGIES),
    default="auto",
    show_default=True,
    help="How queries with filters (labels) are searched: native (the library filters "
    "while it searches), acorn (annkit's own graph search evaluating only passing nodes, "
    "through two hops; docs/filters.md), post (over-fetch and drop), subset (exact over "
    "the passing vectors) or auto (per query, from its selectivity and this index's "
    "measured cost).",
)


def dataset_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """DATA argument plus --queries / --groundtruth / --weights / --metric / --max-queries /
    --name / --base-labels / --query-labels; a notice on stderr when DATA is left out and
    the bundled dataset is used.

    The label files reach a command that takes ``base_labels_file`` / ``query_labels_file``
    parameters; a command without them refuses the options in one line (until it passes
    them on to ``open_dataset``)."""

    inner = func

    @functools.wraps(inner)
    def command(*args: Any, **kwargs: Any) -> Any:
        echo_notices(default_data_notice(kwargs.get("data"), kwargs.get("queries_file")))
        for key in LABEL_KWARGS:
            if _accepts(inner, key):
                continue
            if kwargs.pop(key, None) is not None:
                option = "--" + key.removesuffix("_file").replace("_", "-")
                raise click.UsageError(f"{option} is not supported by this command yet")
        return inner(*args, **kwargs)

    func = command
    decorators: list[Callable[[Any], Any]] = [
        click.argument("data", required=False),
        click.option(
            "--queries",
            "queries_file",
            type=click.Path(dir_okay=False),
            default=None,
            help="Query vectors file (an HDF5 file gives its test set); DATA is then the "
            "base vectors file.",
        ),
        click.option(
            "--groundtruth",
            "groundtruth_file",
            type=click.Path(dir_okay=False),
            default=None,
            help="Ground-truth ids file (.ivecs, .ibin, .npy, or an HDF5 file's neighbors).",
        ),
        click.option(
            "--weights",
            "weights_file",
            type=click.Path(dir_okay=False),
            default=None,
            help="Query weights (frequency), one per query (.npy or text).",
        ),
        metric_option,
        max_queries_option,
        click.option(
            "--name",
            "dataset_name",
            default=None,
            metavar="NAME",
            help="Label for the dataset in reports (default: the base file's name, joined "
            "with the queries file's when the queries come from elsewhere).",
        ),
        label_options,
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


memory_check_option = click.option(
    "--no-memory-check",
    "skip_memory_check",
    is_flag=True,
    help="Skip the check that the estimated memory need fits in available memory.",
)


def gate_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--max-recall-drop / --max-qps-drop / --max-work-increase: the regression gate's
    thresholds."""
    from annkit.bench.compare import (
        DEFAULT_MAX_QPS_DROP,
        DEFAULT_MAX_RECALL_DROP,
        DEFAULT_MAX_WORK_INCREASE,
    )

    decorators = [
        click.option(
            "--max-recall-drop",
            type=click.FloatRange(min=0, max=1),
            default=DEFAULT_MAX_RECALL_DROP,
            show_default=True,
            metavar="DROP",
            help="Fail when recall@k (overall or on the tail slice) of a setting "
            "drops by more than this (absolute).",
        ),
        click.option(
            "--max-qps-drop",
            type=click.FloatRange(min=0),
            default=None,
            metavar="FRACTION",
            help="Fail when a setting's QPS, as speed-up over the exact reference run of the "
            "same sweep, drops by more than this fraction. Default: off, unless the sweeps "
            "measured their own spread (settings timed >= 2 times); then "
            f"{DEFAULT_MAX_QPS_DROP:.0%} beyond it (the current best run below the "
            "baseline's slowest run), and not when the exact reference's own QPS varied by "
            "more than that (a busy machine). A value given here is checked anyway, also on "
            "settings timed once, "
            "best run against best run: on a shared machine that moves 15-50% with nothing "
            "changed (a false alarm). >= 1 turns the check off.",
        ),
        click.option(
            "--max-work-increase",
            type=click.FloatRange(min=0),
            default=DEFAULT_MAX_WORK_INCREASE,
            show_default=True,
            metavar="FRACTION",
            help="Fail when a setting's mean distance computations per query rose by "
            "more than this fraction (0.02 = 2%) unless its (work, recall) point lies above "
            "the baseline's recall-vs-work frontier of that index (engines that count; "
            "others are shown as 'work not counted'). A point below the frontier fails too.",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def timing_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--runs`` (the most timed runs) and ``--qps-tolerance`` (when to stop earlier)."""
    func = click.option(
        "--qps-tolerance",
        type=click.FloatRange(0, 1, max_open=True),
        default=DEFAULT_QPS_TOLERANCE,
        show_default=True,
        help="Stop timing once the two fastest runs' QPS differ by at most this fraction of "
        "the fastest (after 2 runs); 0 always makes --runs runs. In --mode single (one "
        "caller): time a seeded sample of queries until the 95% QPS interval is within "
        "this fraction.",
    )(func)
    return click.option(
        "--runs",
        type=click.IntRange(min=1),
        default=DEFAULT_RUNS,
        show_default=True,
        help="Most timed runs per setting; QPS is the fastest, its spread min-max over them.",
    )(func)


#: one or two real examples per command (by its full name: ``datasets list``), shown at the
#: end of its --help (click epilog) in this order; tests/cli/test_doc_examples.py runs every
#: one of them, in this order, in an empty folder holding only the small sweep file
#: ``sweep.toml``
EXAMPLES: dict[str, list[str]] = {
    "build": ["annkit build words-10k -e hnsw -p M=8 --threads 1 -o hnsw8"],
    "engines": ["annkit engines --json"],
    "info": ["annkit info hnsw8", "annkit info words-10k"],
    "evaluate": [
        "annkit evaluate hnsw8 words-10k -p ef=40",
        "annkit evaluate hnsw8 words-10k -p ef=40 --recall strict --per-query q.csv",
    ],
    "query": ["annkit query hnsw8 words-10k -k 10 -p ef=64 -o neighbours.npy"],
    "groundtruth": ["annkit groundtruth words-10k -k 10 -o gt10.hdf5"],
    "explain": [
        "annkit explain hnsw8 words-10k --query-text six -p ef=10",
        "annkit explain hnsw8 words-10k --query 17 -p ef=10 --json",
    ],
    "effort": ["annkit effort hnsw8 words-10k --target 0.9 --all-slices"],
    "tune": [
        "annkit tune words-10k -e hnsw --build-grid M=8 --effort-grid 10,20,40,80,160 "
        "--target 0.9 --slice tail --threads 1 --cache-dir results/.cache"
    ],
    "adapt": ["annkit adapt hnsw8 words-10k --kind threshold --folds 2 -o policy.json --force"],
    "bench": ["annkit bench sweep.toml -o mine --threads 1", "annkit bench --print-default"],
    "report": [
        "annkit report results/mine --slice tail",
        "annkit report results/mine --html r.html",
    ],
    "plot": [
        "annkit plot results/mine --slice tail -o tail.png",
        "annkit plot results/mine --y p5 -o p5.png",
    ],
    "compare": ["annkit compare results/mine results/mine --markdown"],
    "datasets from-text": [
        "annkit datasets from-text --docs docs.txt --queries log.tsv "
        "--model ./my-model -o mine.hdf5"
    ],
    "datasets list": ["annkit datasets list"],
    "datasets get": ["annkit datasets get glove-25-angular"],
    "stream make-runbook": [
        "annkit stream make-runbook sliding-window words-10k --searches 3 -o window.yaml"
    ],
    "stream run": ["annkit stream run window.yaml words-10k -e hnsw -p M=8 -o stream-hnsw"],
    "stream plot": ["annkit stream plot stream-hnsw -o stream.png"],
}


def examples_epilog(name: str) -> str | None:
    """The ``Examples:`` block of the help of the command named ``name`` in full
    (``datasets list``), None when it has none."""
    lines = EXAMPLES.get(name)
    if not lines:
        return None
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def html_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--html OUT.html``: ``what`` is written as one self-contained HTML page."""
    return click.option(
        "--html",
        "html_file",
        type=click.Path(dir_okay=False),
        default=None,
        metavar="OUT.html",
        help=f"{what} as one self-contained HTML page (opens offline).",
    )
