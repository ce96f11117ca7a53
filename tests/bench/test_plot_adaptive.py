"""``annkit plot`` and the adaptive frontier: an ``annkit adapt --json`` report drawn
(uniform, learned, threshold, oracle) against QPS or work, the ``--y`` recall measures
(recall, p5, tail band), and policy runs of a sweep as their own series."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bundles import make_index
from cli_runner import run_cli

from annkit.adaptive import AdaptConfig, Goal, adapt, save_policy
from annkit.bench.plot import (
    _draw_qps,
    adapt_series,
    load_adapt_report,
    on_measure,
    plot_adaptive,
    plot_sweep,
)
from annkit.cli.console import to_json
from annkit.errors import InputError
from annkit.io import write_dataset_hdf5
from annkit.types import Dataset, RunRecord

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
K = 10
GRID = [16, 23, 32, 45, 64, 91, 128]
CONFIG = AdaptConfig(k=K, folds=2, seed=0, n_centroids=8, kinds=("threshold",))


def small(words10k: Dataset) -> Dataset:
    return Dataset(
        name="words-10k[:4000]",
        metric=words10k.metric,
        base=words10k.base[:4000],
        queries=words10k.queries[:300],
        weights=words10k.weights[:300],
    )


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory, words10k: Dataset) -> dict[str, Path]:
    """``annkit adapt --json``'s report (its to_dict plus policy_file, as the command prints
    it) for a faiss index (counts its distance computations) and an hnswlib one (cannot);
    two goals and two oracle targets keep it quick (the slow test below runs the command)."""
    folder = tmp_path_factory.mktemp("adapt-json")
    dataset = small(words10k)
    out = {}
    for name, engine, params in (
        ("faiss", "faiss", {"factory": "HNSW8,Flat", "efConstruction": 40}),
        ("hnsw", "hnsw", {"M": 8, "ef_construction": 40}),
    ):
        bundle = make_index(folder / name, dataset, engine, params)
        report = adapt(
            bundle,
            dataset,
            K,
            0.95,
            config=CONFIG,
            grid=GRID,
            goals=[Goal("recall", 0.9), Goal("recall", 0.95)],
            oracle_targets=(0.9, 1.0),
        )
        policy = save_policy(report.policy, folder / f"{name}.policy.json")
        path = folder / f"{name}.json"
        path.write_text(to_json({**report.to_dict(), "policy_file": str(policy)}))
        out[name] = path
        out[f"{name}-policy"] = policy
    return out


def test_adapt_json_is_drawn_against_qps_and_work(reports, tmp_path):
    result = run_cli("plot", reports["faiss"])
    assert result.exit_code == 0, result.output
    default = reports["faiss"].with_name("faiss.png")
    assert result.stdout.strip() == str(default) and default.read_bytes()[:8] == PNG_MAGIC
    result = run_cli(
        "plot", reports["faiss"], "--x", "work", "--y", "p5", "-o", tmp_path / "work.svg"
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "work.svg").read_text().lstrip().startswith("<?xml")
    report = load_adapt_report(reports["faiss"])
    frontiers = report["frontiers"]
    work_p5 = adapt_series(report, "work", "p5")
    assert set(work_p5) == {"uniform", "threshold", "oracle"}  # learned was not trained
    assert work_p5["uniform"] == sorted(
        (p["distance_computations"], p["p5_recall"]) for p in frontiers["uniform"]
    )
    assert len(work_p5["uniform"]) == len(GRID)
    tail_qps = adapt_series(report, "qps", "tail")
    assert tail_qps["threshold"] == sorted(
        (p["slices"]["tail"]["recall"], p["qps"]) for p in frontiers["threshold"]
    )
    assert adapt_series(report, "qps", "recall")["oracle"] == sorted(
        (p["recall"], p["qps"]) for p in frontiers["oracle"]
    )


def test_work_axis_is_refused_when_the_engine_did_not_count(reports, tmp_path):
    target = tmp_path / "never.png"
    result = run_cli("plot", reports["hnsw"], "--x", "work", "-o", target)
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: nothing to plot against work: hnsw did not count its "
        "distance computations (distance_computations are null in this "
        "adapt report); use --x qps\n"
    )
    assert not target.exists()
    result = run_cli("plot", reports["hnsw"], "--y", "tail", "-o", tmp_path / "tail.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tail.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--x", "threads"],
            "Error: an adapt report is plotted against qps or work, not 'threads'\n",
        ),
        (
            ["--slice", "tail"],
            "Error: --slice applies to bench results; for an adapt report "
            "choose --y recall, p5 or tail\n",
        ),
    ],
)
def test_adapt_json_refuses_what_it_cannot_show(reports, args, message):
    result = run_cli("plot", reports["faiss"], *args)
    assert result.exit_code == 2 and result.stderr == message


def test_other_files_are_refused_with_one_line(reports, tmp_path):
    result = run_cli("plot", reports["faiss-policy"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {reports['faiss-policy']}: not the output of annkit "
        'adapt --json (no "frontiers" with uniform, learned, threshold '
        "and oracle points)\n"
    )
    (tmp_path / "notes.txt").write_text("not json")
    result = run_cli("plot", tmp_path / "notes.txt")
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {tmp_path / 'notes.txt'}: not JSON; expected a bench "
        "results folder, its runs.jsonl, or the output of annkit adapt "
        "--json\n"
    )
    with pytest.raises(InputError, match="not the output of annkit adapt --json"):
        (tmp_path / "list.json").write_text(json.dumps({"frontiers": {"uniform": [{}]}}))
        load_adapt_report(tmp_path / "list.json")


def test_plot_adaptive_keeps_the_old_image_when_refused(reports, tmp_path):
    target = tmp_path / "kept.png"
    target.write_bytes(b"old")
    report = load_adapt_report(reports["hnsw"])
    with pytest.raises(InputError):
        plot_adaptive(report, target, x="work")
    assert target.read_bytes() == b"old"


# ------------------------------------------------------------------ sweep records (fast)


def _run(
    run_id: str,
    engine: str,
    recall: float,
    qps: float,
    *,
    p5: float | None = None,
    tail: float | None = None,
    work: float | None = None,
    policy: str | None = None,
    build: dict | None = None,
) -> RunRecord:
    query = (
        {"ef": int(qps)}
        if policy is None
        else {"policy": policy, "source": "adapt", "target": recall, "folds": 5, "mean_ef": 40.0}
    )
    return RunRecord.from_dict(
        {
            "run_id": run_id,
            "status": "ok",
            "engine": engine,
            "recall": recall,
            "qps": qps,
            "k": 10,
            "mode": "batch",
            "dataset": "toy",
            "build_params": build or {"M": 8},
            "query_params": query,
            "distance_computations": work,
            "tail": None if p5 is None else {"p5": p5, "mean": recall, "queries": 100},
            "slices": None
            if tail is None
            else {"tail": {"queries": 40, "recall": tail, "p5_recall": p5}},
        }
    )


RECORDS = [
    _run("u1", "hnsw", 0.90, 5000, p5=0.6, tail=0.85, work=300),
    _run("u2", "hnsw", 0.95, 3000, p5=0.7, tail=0.92, work=600),
    _run("p1", "hnsw", 0.93, 4000, p5=0.8, tail=0.91, work=450, policy="learned"),
    _run("p2", "hnsw", 0.97, 2500, p5=0.9, tail=0.96, work=800, policy="learned"),
    _run("t1", "hnsw", 0.96, 2000, p5=0.8, tail=0.95, work=700, policy="threshold"),
    _run("f", "flat", 1.0, 900, p5=1.0, tail=1.0, work=10000, build={}),
]


def test_measures_replace_recall_and_drop_runs_without_them():
    p5 = on_measure(RECORDS, "p5")
    assert [(r.run_id, r.recall) for r in p5] == [
        ("u1", 0.6),
        ("u2", 0.7),
        ("p1", 0.8),
        ("p2", 0.9),
        ("t1", 0.8),
        ("f", 1.0),
    ]
    tail = on_measure(RECORDS + [_run("old", "hnsw", 0.9, 10)], "tail")
    assert [r.recall for r in tail] == [0.85, 0.92, 0.91, 0.96, 0.95, 1.0]
    with pytest.raises(InputError, match=r"^nothing to plot: no run recorded a tail band"):
        on_measure([_run("old", "hnsw", 0.9, 10)], "tail")
    with pytest.raises(
        InputError,
        match=r"^--y tail is the tail band's recall already; "
        r"drop --slice$",
    ):
        plot_sweep(RECORDS, "never.png", y="tail", slice_records=RECORDS)


def test_policy_runs_are_drawn_as_their_own_lines_in_the_engine_colour():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots()
    try:
        points = on_measure(RECORDS, "p5")
        _draw_qps(axes, points, [], "slice", ["C0", "C1"], "title", "p5")
        lines = {line.get_label(): line for line in axes.get_lines()}
        # M=8 differs from hnsw's default M, so the build names the policy series
        assert set(lines) >= {"hnsw", "hnsw M=8 + learned policy", "hnsw M=8 + threshold policy"}
        uniform = lines["hnsw"]
        assert list(uniform.get_xdata()) == [0.6, 0.7]  # no policy point on it
        learned = lines["hnsw M=8 + learned policy"]
        assert list(learned.get_xdata()) == [0.8, 0.9] and learned.get_marker() == "D"
        assert lines["hnsw M=8 + threshold policy"].get_marker() == "s"
        assert learned.get_color() == uniform.get_color() == "C0"
    finally:
        plt.close(figure)


def test_sweep_plot_file_with_policies_on_every_measure(tmp_path):
    for x, measure in (("qps", "recall"), ("work", "p5"), ("qps", "tail")):
        target = plot_sweep(RECORDS, tmp_path / f"{x}-{measure}.png", x=x, y=measure)
        assert target.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.slow
def test_the_json_annkit_adapt_prints_is_plotted(reports, words10k, tmp_path):
    dataset = small(words10k)
    data = tmp_path / "small.hdf5"
    write_dataset_hdf5(
        data,
        base=dataset.base,
        queries=dataset.queries,
        weights=dataset.weights,
        metric=dataset.metric,
    )
    index = reports["faiss"].parent / "faiss"
    result = run_cli(
        "adapt",
        index,
        data,
        "--kind",
        "threshold",
        "--kinds",
        "threshold",
        "--folds",
        2,
        "--centroids",
        8,
        "--grid",
        ",".join(map(str, GRID)),
        "-o",
        tmp_path / "p.json",
        "--json",
    )
    wins = json.loads(result.stdout)["wins"]
    assert result.exit_code == (0 if wins else 1), result.output  # 1: no policy wins here
    (tmp_path / "adapt.json").write_text(result.stdout)
    for args, name in (([], "adapt.png"), (["--x", "work", "--y", "tail"], "adapt-work-tail.png")):
        plotted = run_cli("plot", tmp_path / "adapt.json", *args)
        assert plotted.exit_code == 0, plotted.output
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
    series = adapt_series(load_adapt_report(tmp_path / "adapt.json"), "work", "recall")
    assert {"uniform", "threshold", "oracle"} <= set(series)
