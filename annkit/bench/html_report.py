"""A sweep's report as one self-contained HTML page: the interactive frontier (hover a
point for its setting, recall, p5, QPS and spread, distance computations; switch the x axis
between QPS and work and the query slice), the Pareto table and headlines of
:func:`annkit.bench.report.build_report` on each slice, and the worst queries of each
setting (their recall, returned against true neighbours, texts when the dataset has them).

The page is the template ``report_page.html`` (its style and script inline) with the data
embedded as JSON: it loads nothing from the network and opens from disk. The figures are the
report's own (one scoring path): nothing here scores a run.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from annkit.bench.plot import colours_by_series, p5_recall, work_frontiers
from annkit.bench.policies import policy_kind
from annkit.bench.report import (
    BAND_RECALL,
    build_report,
    load_results,
    on_slice,
    series_names,
    setting_labels,
)
from annkit.bench.report_types import SweepReport
from annkit.bench.store import ResultsStore
from annkit.engines.base import is_reference, reference_engine
from annkit.errors import AnnkitError
from annkit.files import json_ready, write_text
from annkit.types import RunRecord

#: matplotlib's default colour cycle, so that a series has the colour of its PNG plot
COLOURS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]
#: the colour of the exact reference (as in the PNG)
REFERENCE_COLOUR = "#333333"
#: worst queries kept per setting
WORST_QUERIES = 10
#: where the page template's data goes
DATA_MARK = "/*ANNKIT_DATA*/null"
#: slice name prefixes, in the order the page lists them (the rest after, as recorded)
SLICE_ORDER = (
    "head",
    "torso",
    "tail",
    "sel",
    "unfiltered",
    "hard-",
    "lid-",
    "rc-",
    "expansion-",
    "ood-",
)


def page_template() -> str:
    """The page template (style and script inline), shipped as package data."""
    return files("annkit.bench").joinpath("report_page.html").read_text(encoding="utf-8")


def _number(value: float | None) -> float | None:
    """A finite float, else None (JSON has no NaN)."""
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)


def _slice_names(records: Sequence[RunRecord]) -> list[str]:
    """``all``, then every slice the usable records hold: frequency bands, selectivity
    bands, then hardness (SLICE_ORDER); others after them by name."""
    names: dict[str, None] = {}
    for record in records:
        if record.usable:
            names.update(dict.fromkeys(record.slices or {}))

    def order(name: str) -> tuple[int, str]:
        for position, prefix in enumerate(SLICE_ORDER):
            if name.startswith(prefix):
                return position, ""
        return len(SLICE_ORDER), name

    return ["all", *sorted(names, key=order)]


def _setting_facts(
    record: RunRecord, series: Mapping[str, str], labels: Mapping[str, str]
) -> dict[str, Any]:
    """What does not change between slices: a usable record's series, setting name, whether
    it is the exact reference, its QPS and spread over the timed runs, its work unit."""
    return {
        "series": series[record.run_id],
        "setting": labels.get(record.run_id, ""),
        "reference": is_reference(record.engine) and policy_kind(record) is None,
        "qps": _number(record.qps),
        "qps_min": _number(record.qps_min),
        "qps_median": _number(record.qps_median),
        "qps_max": _number(record.qps_max),
        "runs": record.runs,
        "work_unit": record.work_unit,
    }


#: the fields of a point on a slice, in the order the page reads them
POINT_FIELDS = ("id", "recall", "p5", "work", "front_qps", "front_work")


def _points(records: Sequence[RunRecord], summary: SweepReport) -> list[list[Any]]:
    """One point per usable record on a slice (POINT_FIELDS): its recall, p5 and work
    there, and whether it is on its series' QPS frontier (the report's) and work
    frontier."""
    on_qps = {run.run_id for entry in summary.engines.values() for run in entry.pareto}
    on_work = {r.run_id for front in work_frontiers(list(records)).values() for r in front}
    return [
        [
            record.run_id,
            _number(record.recall),
            _number(p5_recall(record)),
            _number(record.distance_computations),
            record.run_id in on_qps,
            record.run_id in on_work,
        ]
        for record in records
        if record.usable
    ]


def _cell(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _speedup(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}x"


def report_tables(summary: SweepReport) -> str:
    """The Pareto table and the headlines of ``summary`` as HTML (what ``annkit report``
    prints, from the same SweepReport)."""
    k = summary.k
    reference = reference_engine()
    escape = html.escape
    rows = []
    for name, entry in summary.engines.items():
        for position, run in enumerate(entry.pareto):
            spread = (
                f" ({_cell(run.qps_min)}-{_cell(run.qps_max)})"
                if run.qps_min is not None and run.qps_max is not None
                else ""
            )
            rows.append(
                "<tr>"
                f"<td>{escape(name) if position == 0 else ''}</td>"
                f"<td>{escape(run.setting)}</td>"
                f"<td class=n>{_cell(run.recall, 4)}</td>"
                f"<td class=n>{_cell(run.qps)}{spread}</td>"
                f"<td class=n>{_speedup(run.speedup_vs_flat)}</td>"
                f"<td class=n>{_cell(run.distance_computations)}</td>"
                f"<td class=n>{_cell(run.build_seconds, 2)}</td>"
                "</tr>"
            )
    pareto = (
        f"<h3>Pareto-optimal runs: recall@{k} vs QPS</h3><table class=t><tr>"
        f"<th>series</th><th>setting (build | query)</th><th>recall@{k}</th>"
        f"<th>QPS (min-max)</th><th>x {escape(reference)}</th><th>dist/query</th>"
        f"<th>build s</th></tr>{''.join(rows)}</table>"
    )
    lines = []
    for headline in summary.headlines:
        lead = f"best QPS at recall@{k} &ge; {headline.threshold:.2f}: "
        best = headline.best
        if best is None:
            lines.append(f"<li>{lead}not reached by any run</li>")
            continue
        speed = (
            f" ({_speedup(best.speedup_vs_flat)} {escape(reference)})"
            if best.speedup_vs_flat is not None
            else ""
        )
        lines.append(
            f"<li>{lead}<b>{escape(best.series)}</b>"
            f"{' ' + escape(best.setting) if best.setting else ''}: "
            f"{_cell(best.qps)} QPS{speed}, recall@{k} {_cell(best.recall, 4)}</li>"
        )
    counts = summary.runs
    status = (
        f"{counts.total} runs: {counts.ok} ok, {counts.failed} failed, {counts.timeout} timed out"
    )
    filters = ""
    if summary.filter_choices:
        filters = html_table(
            f"fastest filter strategy per selectivity band at recall@{k} >= {BAND_RECALL:.2f}",
            ["band", "series", "strategy", "setting", f"recall@{k}", "dist/query", "QPS"],
            [
                [
                    choice.band,
                    choice.series,
                    choice.strategy or "not reached",
                    choice.setting or "",
                    _cell(choice.recall, 4),
                    _cell(choice.work),
                    _cell(choice.qps),
                ]
                for choice in summary.filter_choices
            ],
        )
    return f"<ul class=h>{''.join(lines)}</ul><p class=s>{status}</p>{pareto}{filters}"


def _dataset_of(meta: Mapping[str, Any] | None) -> Any:
    """The sweep's dataset (from meta.json: its file, else its name), or None when it cannot
    be opened any more (moved, deleted)."""
    from annkit.sources import open_dataset

    facts = (meta or {}).get("dataset")
    if not isinstance(facts, dict):
        return None
    for spec in (facts.get("source"), facts.get("name")):
        if not spec:
            continue
        try:
            return open_dataset(spec, metric=facts.get("metric"), name=facts.get("name"))
        except (AnnkitError, OSError, ValueError):
            continue
    return None


def worst_queries(
    folder: Path,
    records: Sequence[RunRecord],
    meta: Mapping[str, Any] | None,
    count: int = WORST_QUERIES,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str], str | None]:
    """Per usable setting (by run_id), its ``count`` worst queries by the stored per-query
    recall (perquery.h5): the query's row, text, recall, and its returned ids against the
    true ones when the sweep kept them and its dataset opens; the texts of those ids (by id,
    when the dataset has texts); and a note saying what is missing (None when nothing is)."""
    from annkit.sources import base_texts, query_texts

    store = ResultsStore(folder)
    dataset = _dataset_of(meta)
    truth = texts = questions = None
    note = None
    if dataset is None:
        note = "the sweep's dataset cannot be opened here: true neighbours and texts left out"
    else:
        truth = dataset.neighbors
        if truth is None:
            note = "the dataset file holds no ground truth: true neighbours left out"
        texts = base_texts(dataset)
        questions = query_texts(dataset)
    out: dict[str, list[dict[str, Any]]] = {}
    shown: dict[str, str] = {}
    for record in records:
        if not record.usable:
            continue
        recall = store.per_query_recall(record.run_id)
        if recall is None:
            note = note or "some settings have no per-query recall stored"
            continue
        returned = store.per_query_ids(record.run_id)
        k = record.k or (returned.shape[1] if returned is not None else 0)
        rows = np.argsort(recall, kind="stable")[:count]
        same_queries = dataset is not None and dataset.n_queries == len(recall)
        if dataset is not None and not same_queries:
            note = note or (
                "the sweep's queries are not its dataset's (a sample?): true neighbours and "
                "texts left out"
            )
        entries = []
        for row in rows.tolist():
            true_ids = truth[row, :k].tolist() if same_queries and truth is not None else None
            got = returned[row].tolist() if returned is not None else None
            entries.append(
                {
                    "query": row,
                    "text": questions[row] if questions and same_queries else None,
                    "recall": _number(float(recall[row])),
                    "returned": None if got is None else _neighbours(got, true_ids, texts, shown),
                    "true": None if true_ids is None else _neighbours(true_ids, got, texts, shown),
                }
            )
        out[record.run_id] = entries
    return out, shown, note


def _neighbours(
    ids: Sequence[int],
    other: Sequence[int] | None,
    texts: Sequence[str] | None,
    shown: dict[str, str],
) -> list[list[Any]]:
    """``[id, in the other list (None: unknown)]`` per id (-1, no neighbour, left out);
    each id's text goes into ``shown`` (one copy per id for the whole page)."""
    others = set(other) if other is not None else set()
    out = []
    for i in ids:
        if i < 0:
            continue
        if texts is not None and i < len(texts):
            shown[str(int(i))] = texts[i]
        out.append([int(i), None if other is None else int(i) in others])
    return out


def report_data(
    folder: Path, records: Sequence[RunRecord], meta: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The page's data: the sweep's series (name, colour, policy kind), and per slice its
    points, reference and report tables; the worst queries of every setting."""
    meta = dict(meta or {})
    series = series_names(records)
    labels = setting_labels(records)
    colours = colours_by_series(list(records), series, COLOURS)
    usable = [r for r in records if r.usable]
    first = usable[0] if usable else (records[0] if records else None)
    slices = []
    selected = None
    for name in _slice_names(records):
        sliced = on_slice(records, name)
        summary = build_report(sliced, meta, folder)
        queries = None
        if name != "all":
            counts = {r.tail.queries for r in sliced if r.usable and r.tail is not None}
            queries = counts.pop() if len(counts) == 1 else None
        if name == "all":
            best = [line.best for line in summary.headlines if line.best is not None]
            selected = best[0].run_id if best else None
        slices.append(
            {
                "name": name,
                "queries": queries,
                "points": _points(sliced, summary),
                "tables": report_tables(replace(summary, slice=name)),
            }
        )
    worst, texts, note = worst_queries(folder, records, meta)
    names = list(dict.fromkeys(series[r.run_id] for r in usable))
    return {
        "title": f"{(first.dataset if first else None) or folder.name}: recall@"
        f"{first.k if first else 'k'}" + (f" ({first.mode})" if first and first.mode else ""),
        "k": first.k if first else None,
        "axes": ["qps", "work"],
        "selected": selected,
        "reference": reference_engine(),
        "series": [
            {
                "name": name,
                "colour": colours.get(name, REFERENCE_COLOUR),
                "policy": policy_kind(next(r for r in usable if series[r.run_id] == name)),
            }
            for name in names
        ],
        "settings": {r.run_id: _setting_facts(r, series, labels) for r in usable},
        "point_fields": list(POINT_FIELDS),
        "slices": slices,
        "worst": worst,
        "texts": texts,
        "worst_note": note,
    }


def render_page(data: Mapping[str, Any]) -> str:
    """The page: the template with ``data`` embedded as JSON (``</`` escaped so that no text
    in it closes the script)."""
    text = json.dumps(json_ready(data), allow_nan=False, separators=(",", ":"))
    text = text.replace("</", "<\\/").replace("<!--", "<\\!--")
    return page_template().replace(DATA_MARK, text)


def write_html_report(
    results: str | Path,
    target: str | Path,
    on_progress: Callable[[str], None] | None = None,
) -> Path:
    """Write the HTML report of a results folder (or its runs.jsonl) to ``target``,
    atomically; InputError when ``results`` is not one."""
    folder, records, meta = load_results(results)
    if on_progress is not None:
        on_progress(f"HTML report of {len(records)} runs")
    return write_page(report_data(folder, records, meta), target)


def html_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A titled HTML table of text cells (escaped; numbers right-aligned)."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class=n>{html.escape(str(cell))}</td>"
            if isinstance(cell, int | float) or (isinstance(cell, str) and _numeric(cell))
            else f"<td>{html.escape(str(cell))}</td>"
            for cell in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<h3>{html.escape(title)}</h3><table class=t><tr>{head}</tr>{body}</table>"


def _numeric(text: str) -> bool:
    return text.replace(",", "").replace(".", "").replace("x", "").replace("-", "").isdigit()


def _params_text(params: Any) -> str:
    if isinstance(params, Mapping):
        return " ".join(f"{name}={value}" for name, value in params.items())
    return "" if params is None else str(params)


def page_data(
    *,
    title: str,
    k: int | None,
    axes: Sequence[str],
    series: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Mapping[str, Any]],
    slices: Sequence[Mapping[str, Any]],
    note: str | None,
) -> dict[str, Any]:
    """The page's data for reports without per-query results (adapt, streams): ``settings``
    by id (series, setting, reference, qps and spread, runs, work_unit, step), and per slice
    its points (POINT_FIELDS) and tables."""
    first = next(iter(settings), None)
    return {
        "title": title,
        "k": k,
        "axes": list(axes),
        "selected": first,
        "reference": reference_engine(),
        "series": list(series),
        "settings": dict(settings),
        "point_fields": list(POINT_FIELDS),
        "slices": list(slices),
        "worst": {},
        "texts": {},
        "worst_note": note,
    }


#: the policy frontiers of an adapt report, in drawing order (others follow as they come)
ADAPT_ORDER = ("uniform", "learned", "threshold", "oracle")


def adapt_report_data(report: Mapping[str, Any]) -> dict[str, Any]:
    """The page's data for an ``annkit adapt`` report (its ``to_dict`` / ``--json`` form):
    each frontier (uniform, the policy kinds, oracle) as a series, on every slice the
    report's points hold, and its comparison table."""
    frontiers: Mapping[str, list[Mapping[str, Any]]] = report.get("frontiers") or {}
    names = [n for n in ADAPT_ORDER if frontiers.get(n)]
    names += [n for n in frontiers if n not in names and frontiers.get(n)]
    settings: dict[str, dict[str, Any]] = {}
    slice_names: dict[str, None] = {}
    ids: dict[str, list[str]] = {}
    for name in names:
        ids[name] = []
        for number, item in enumerate(frontiers[name]):
            run_id = f"{name}-{number}"
            ids[name].append(run_id)
            slice_names.update(dict.fromkeys(item.get("slices") or {}))
            settings[run_id] = {
                "series": name,
                "setting": _params_text(item.get("setting")),
                "reference": False,
                "qps": _number(item.get("qps")),
                "qps_min": None,
                "qps_median": None,
                "qps_max": None,
                "runs": None,
                "work_unit": None,
            }
    slices = []
    for slice_name in ["all", *slice_names]:
        points = []
        for name in names:
            for run_id, item in zip(ids[name], frontiers[name], strict=True):
                if slice_name == "all":
                    recall, p5, work = (
                        item.get("recall"),
                        item.get("p5_recall"),
                        item.get("distance_computations"),
                    )
                else:
                    entry = (item.get("slices") or {}).get(slice_name)
                    if not isinstance(entry, Mapping):
                        continue
                    recall, p5 = entry.get("recall"), entry.get("p5_recall")
                    work = (entry.get("work") or {}).get("mean")
                points.append([run_id, _number(recall), _number(p5), _number(work), True, True])
        slices.append(
            {
                "name": slice_name,
                "queries": None,
                "points": points,
                "tables": _adapt_tables(report) if slice_name == "all" else "",
            }
        )
    colours = {name: COLOURS[i % len(COLOURS)] for i, name in enumerate(names)}
    params = _params_text(report.get("build_params"))
    return page_data(
        title=f"{report.get('dataset')}: {report.get('engine')} {params}, per-query "
        f"{report.get('param')} policies (recall@{report.get('k')})",
        k=report.get("k"),
        axes=("qps", "work"),
        series=[
            {
                "name": name,
                "colour": REFERENCE_COLOUR if name == "oracle" else colours[name],
                "policy": None if name == "uniform" else name,
            }
            for name in names
        ],
        settings=settings,
        slices=slices,
        note=f"{report.get('mode') or ''}; annkit adapt keeps no per-query results",
    )


def _adapt_tables(report: Mapping[str, Any]) -> str:
    """The comparisons at each operating point, and what the policies win."""
    rows = []
    for comparison in report.get("comparisons") or []:
        point = comparison.get("operating_point")
        for name, entry in comparison.items():
            if not isinstance(entry, Mapping) or "recall" not in entry or name == "room":
                continue
            ratio = entry.get("work_ratio")
            rows.append(
                [
                    "" if point is None else f"{point:.2f}",
                    name,
                    _params_text(entry.get("setting")),
                    _cell(entry.get("recall"), 4),
                    _cell(entry.get("p5_recall"), 2),
                    _cell(entry.get("tail_band_recall"), 4),
                    _cell(entry.get("distance_computations")),
                    _cell(entry.get("qps")),
                    "-" if ratio is None else f"{ratio:.2f}x",
                ]
            )
    k = report.get("k")
    table = html_table(
        "policies against uniform effort, near each operating point",
        [
            "near recall",
            "series",
            "setting",
            f"recall@{k}",
            "p5",
            "tail band",
            "dist/query",
            "QPS",
            "work vs uniform",
        ],
        rows,
    )
    wins = report.get("wins") or []
    lines = "".join(f"<li>{html.escape(str(win))}</li>" for win in wins)
    return f"<ul class=h>{lines or '<li>no operating point where a policy wins</li>'}</ul>{table}"


def write_page(data: Mapping[str, Any], target: str | Path) -> Path:
    """Write a page with ``data`` to ``target`` atomically."""
    target = Path(target)
    write_text(target, render_page(data))
    return target
