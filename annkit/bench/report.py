"""What a sweep found: Pareto-optimal runs per engine, the best QPS at recall thresholds,
speed-ups over the exact ``flat`` reference measured in the same sweep, and the failures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from annkit.bench.pareto import pareto_front
from annkit.bench.store import META_FILE, RUNS_FILE, locate_results, read_runs
from annkit.errors import InputError

THRESHOLDS = (0.90, 0.95, 0.99)
REFERENCE_ENGINE = "flat"
_RUN_FIELDS = ("run_id", "engine", "build_params", "query_params", "recall", "qps",
               "latency_ms", "build_seconds", "index_bytes")


def usable(record: dict) -> bool:
    """An ok record with a finite recall and a positive, finite QPS."""
    recall, qps = record.get("recall"), record.get("qps")
    return (record.get("status") == "ok" and isinstance(recall, int | float)
            and isinstance(qps, int | float) and math.isfinite(recall)
            and math.isfinite(qps) and qps > 0)


def reference_qps(records: list[dict]) -> float | None:
    """QPS of the exact reference (best ``flat`` run), or None when the sweep has none."""
    values = [r["qps"] for r in records if r.get("engine") == REFERENCE_ENGINE and usable(r)]
    return max(values) if values else None


def engine_frontiers(records: list[dict]) -> dict[str, list[dict]]:
    """Pareto-optimal usable records per engine (engines in first-seen order), by recall."""
    by_engine: dict[str, list[dict]] = {}
    for record in records:
        if usable(record):
            by_engine.setdefault(record["engine"], []).append(record)
    return {
        engine: [runs[i] for i in pareto_front([(r["recall"], r["qps"]) for r in runs])]
        for engine, runs in by_engine.items()
    }


def _summary(record: dict, flat_qps: float | None) -> dict[str, Any]:
    out = {key: record.get(key) for key in _RUN_FIELDS}
    out["speedup_vs_flat"] = record["qps"] / flat_qps if flat_qps else None
    return out


def best_at(records: list[dict], threshold: float) -> dict | None:
    """The usable record with the highest QPS among those with recall >= threshold."""
    candidates = [r for r in records if usable(r) and r["recall"] >= threshold]
    return max(candidates, key=lambda r: r["qps"]) if candidates else None


def build_report(records: list[dict], meta: dict | None = None,
                 results_dir: str | Path | None = None,
                 thresholds: tuple[float, ...] = THRESHOLDS) -> dict[str, Any]:
    """The report of a sweep as one JSON-ready dict."""
    meta = meta or {}
    flat_qps = reference_qps(records)
    frontiers = engine_frontiers(records)
    engines = list(dict.fromkeys(r["engine"] for r in records))
    first = records[0] if records else {}
    dataset = meta.get("dataset", {}).get("name") or first.get("dataset")
    headlines = []
    for threshold in thresholds:
        per_engine = {}
        for engine in engines:
            best = best_at([r for r in records if r["engine"] == engine], threshold)
            per_engine[engine] = _summary(best, flat_qps) if best else None
        overall = best_at(records, threshold)
        headlines.append({
            "threshold": threshold,
            "best": _summary(overall, flat_qps) if overall else None,
            "engines": per_engine,
        })
    counts = {status: sum(r["status"] == status for r in records)
              for status in ("ok", "failed", "timeout")}
    return {
        "results_dir": str(results_dir) if results_dir is not None else None,
        "dataset": dataset,
        "metric": meta.get("dataset", {}).get("metric") or first.get("metric"),
        "k": meta.get("k", first.get("k")),
        "mode": meta.get("mode", first.get("mode")),
        "runs": {"total": len(records), **counts},
        "flat_qps": flat_qps,
        "engines": {
            engine: {
                "runs": sum(r["engine"] == engine for r in records),
                "ok": sum(r["engine"] == engine and usable(r) for r in records),
                "pareto": [_summary(r, flat_qps) for r in frontiers.get(engine, [])],
            }
            for engine in engines
        },
        "headlines": headlines,
        "failed": [
            {key: r.get(key) for key in ("run_id", "engine", "build_params", "query_params",
                                         "status", "error")}
            for r in records if r["status"] != "ok"
        ],
    }


def load_results(path: str | Path) -> tuple[Path, list[dict], dict | None]:
    """(folder, records, meta) of a results folder or its runs.jsonl."""
    import json

    folder = locate_results(path)
    runs_path = Path(path) if Path(path).is_file() else folder / RUNS_FILE
    meta = None
    meta_path = folder / META_FILE
    if meta_path.is_file():
        try:
            loaded = json.loads(meta_path.read_text(encoding="utf-8"))
            meta = loaded if isinstance(loaded, dict) else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            meta = None
    return folder, read_runs(runs_path), meta


def report_results(path: str | Path) -> dict[str, Any]:
    """The report of a results folder (or runs.jsonl) on disk."""
    folder, records, meta = load_results(path)
    return build_report(records, meta, folder)


def on_slice(records: list[dict], slice_name: str) -> list[dict]:
    """Records with ``recall`` replaced by their recall on ``slice_name`` (e.g. ``tail``,
    ``hard-lid``), and ``slice`` set; ``all`` returns the records unchanged. Failed runs are
    kept as they are; an unknown slice is an error listing the available ones."""
    if slice_name == "all":
        return records
    available: dict[str, None] = {}
    out = []
    for record in records:
        slices = record.get("slices") or {}
        available.update(dict.fromkeys(slices))
        if record.get("status") != "ok":
            out.append(record)
            continue
        if slice_name not in slices:
            continue
        out.append({**record, "recall": slices[slice_name]["recall"], "slice": slice_name})
    if slice_name not in available:
        names = ", ".join(["all", *available]) if available else "none recorded"
        raise InputError(f"unknown slice {slice_name!r} (available: {names})")
    return out
