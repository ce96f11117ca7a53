"""One series per index (issue 19): every index (engine + resolved build params) of a sweep
is its own series, named by its label, in the report's tables and headlines, in plots and
in the records; ``label =`` on an ``[[engine]]`` entry overrides the default."""

from __future__ import annotations

from pathlib import Path

import pytest

from annkit.bench.plot import colours_by_series, plot_sweep
from annkit.bench.report import build_report, load_results, series_names
from annkit.bench.runner import run_sweep
from annkit.bench.spec import SweepError, parse_sweep
from annkit.engines.labels import block_labels, index_labels
from annkit.types import RunRecord

FAISS_TWO = (
    '[[engine]]\nname = "faiss"\nbuild = { factory = "HNSW16,Flat" }\n'
    "query = { efSearch = [16, 64] }\n\n"
    '[[engine]]\nname = "faiss"\nbuild = { factory = "IVF64,PQ48x4fs,RFlat" }\n'
    "query = { nprobe = [8, 32], k_factor = 16 }\n"
)
HNSW_TWO = (
    '[[engine]]\nname = "hnsw"\nbuild = { M = [8, 16], ef_construction = 40 }\n'
    "query = { ef = [20, 80] }\n"
)
SWEEP = f'[bench]\nruns = 1\n\n{FAISS_TWO}\n{HNSW_TWO}\n[[engine]]\nname = "flat"\n'


def test_the_default_label_names_what_differs_among_an_engines_indexes():
    labels = index_labels(
        [
            ("faiss", {"factory": "HNSW32,Flat", "train_size": None, "seed": 1234}),
            ("faiss", {"factory": "IVF1024,PQ192x4fs,RFlat", "train_size": None, "seed": 1234}),
            ("hnsw", {"M": 16, "ef_construction": 200}),
            ("hnsw", {"M": 32, "ef_construction": 200}),
            ("annoy", {"n_trees": 10}),
        ]
    )
    assert labels == [
        "faiss HNSW32,Flat",
        "faiss IVF1024,PQ192x4fs,RFlat",
        "hnsw M=16",
        "hnsw M=32",
        "annoy",
    ]
    # None (data-derived, or a failed build's) never splits an index: a failed run is
    # named like the measured runs of its index
    assert (
        index_labels(
            [("faiss", {"factory": "HNSW32,Flat", "train_size": None})] * 2
            + [("faiss", {"factory": "HNSW32,Flat", "train_size": 10_000})],
            separate=False,
        )
        == ["faiss"] * 3
    )
    # two distinct indexes still get two labels (None, a data-derived value, as auto)
    assert index_labels(
        [
            ("faiss", {"factory": "HNSW32,Flat", "train_size": None}),
            ("faiss", {"factory": "HNSW32,Flat", "train_size": 5000}),
        ]
    ) == ["faiss train_size=auto", "faiss train_size=5000"]
    assert block_labels("mine", "hnsw", [{"M": 8, "e": 1}, {"M": 16, "e": 1}]) == [
        "mine M=8",
        "mine M=16",
    ]


def test_sweep_builds_carry_their_labels_and_label_overrides():
    spec = parse_sweep(SWEEP + '\n[[engine]]\nname = "hnsw"\nbuild = { M = 32 }\nlabel = "big"\n')
    assert [(build.label, build.labelled) for build in spec.builds] == [
        ("faiss HNSW16,Flat", False),
        ("faiss IVF64,PQ48x4fs,RFlat", False),
        ("hnsw M=8 ef_construction=40", False),
        ("hnsw M=16 ef_construction=40", False),
        ("flat", False),
        ("big", True),
    ]
    assert spec.labels()[spec.builds[5].queries[0].run_id] == "big"
    # a labelled entry of several builds: the label, then what tells them apart
    many = parse_sweep(f'{HNSW_TWO}label = "ours"\n')
    assert [build.label for build in many.builds] == ["ours M=8", "ours M=16"]
    assert "labels" in many.identity() and "labels" not in parse_sweep(HNSW_TWO).identity()


@pytest.mark.parametrize(
    "text, message",
    [
        (
            f'{HNSW_TWO}label = ""\n',
            "sweep.toml line 5: engine 'hnsw': label must be a non-empty string, e.g. "
            'label = "my index"',
        ),
        (
            '[[engine]]\nname = "hnsw"\nlabel = "x"\n\n[[engine]]\nname = "annoy"\nlabel = "x"\n',
            "sweep.toml line 7: label 'x' names two indexes of the sweep: give each "
            "[[engine]] entry its own label",
        ),
    ],
)
def test_bad_labels_name_file_and_line(text, message):
    with pytest.raises(SweepError) as caught:
        parse_sweep(text, "sweep.toml")
    assert str(caught.value) == message


def _record(run_id: str, engine: str, build: dict, recall: float, qps: float) -> RunRecord:
    return RunRecord.from_dict(
        {
            "run_id": run_id,
            "status": "ok",
            "engine": engine,
            "build_params": build,
            "query_params": {},
            "recall": recall,
            "qps": qps,
            "k": 10,
            "mode": "batch",
        }
    )


def test_old_records_get_one_series_per_index():
    """runs.jsonl records written before labels: the default rule over their params."""
    records = [
        _record("h1", "faiss", {"factory": "HNSW16,Flat"}, 0.97, 900.0),
        _record("h2", "faiss", {"factory": "HNSW16,Flat"}, 0.99, 500.0),
        _record("i1", "faiss", {"factory": "IVF64,PQ48x4fs,RFlat"}, 0.96, 3000.0),
        _record("m8", "hnsw", {"M": 8}, 0.95, 2000.0),
        _record("m16", "hnsw", {"M": 16}, 0.99, 1500.0),
    ]
    names = series_names(records)
    assert names == {
        "h1": "faiss HNSW16,Flat",
        "h2": "faiss HNSW16,Flat",
        "i1": "faiss IVF64,PQ48x4fs,RFlat",
        "m8": "hnsw M=8",
        "m16": "hnsw M=16",
    }
    report = build_report(records).to_dict()
    assert list(report["engines"]) == [
        "faiss HNSW16,Flat",
        "faiss IVF64,PQ48x4fs,RFlat",
        "hnsw M=8",
        "hnsw M=16",
    ]
    # the best QPS per series: the faiss HNSW row is there although IVF is faster
    at_95 = report["headlines"][1]["engines"]
    assert at_95["faiss HNSW16,Flat"]["run_id"] == "h1"
    assert at_95["faiss IVF64,PQ48x4fs,RFlat"]["run_id"] == "i1"
    assert report["engines"]["faiss HNSW16,Flat"]["engine"] == "faiss"
    colours = colours_by_series(records, names, ["red", "green", "blue", "black"])
    assert len(set(colours.values())) == 4  # one colour per index


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("labels")
    run_sweep(parse_sweep(SWEEP, "labels.toml"), root / "sweep", results_root=root, threads=1)
    return root / "sweep"


@pytest.mark.slow
def test_a_real_sweep_reports_and_plots_one_series_per_index(results, tmp_path, monkeypatch):
    _, records, meta = load_results(results)
    report = build_report(records, meta).to_dict()
    series = [
        "faiss HNSW16,Flat",
        "faiss IVF64,PQ48x4fs,RFlat",
        "hnsw M=8",
        "hnsw M=16",
        "flat",
    ]
    assert list(report["engines"]) == series
    lowest = report["headlines"][0]  # recall >= 0.90: every index reaches it
    assert [name for name, best in lowest["engines"].items() if best is not None] == series
    for name in series[:-1]:
        runs = report["engines"][name]["pareto"]
        assert runs and all(run["series"] == name for run in runs)
    lines: list[str] = []
    import matplotlib.axes

    original = matplotlib.axes.Axes.plot

    def spy(self, *args, **kwargs):
        if kwargs.get("label"):
            lines.append(kwargs["label"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    plot_sweep(records, tmp_path / "plot.png")
    assert lines == series[:-1]  # flat is the reference line, drawn by axhline
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_records_carry_their_label_and_label_overrides_the_default(results, tmp_path):
    _, records, _ = load_results(results)
    assert {record.label for record in records} == {
        "faiss HNSW16,Flat",
        "faiss IVF64,PQ48x4fs,RFlat",
        "hnsw M=8",
        "hnsw M=16",
        "flat",
    }
    labelled = (
        '[bench]\nruns = 1\n\n[[engine]]\nname = "hnsw"\nbuild = { M = 8, ef_construction = 40 }\n'
        'query = { ef = [20] }\nlabel = "mine"\n\n[[engine]]\nname = "flat"\n'
    )
    outcome = run_sweep(
        parse_sweep(labelled, "mine.toml"), tmp_path / "mine", results_root=tmp_path, threads=1
    )
    assert [record.label for record in outcome.records] == ["mine", "flat"]
    _, stored, meta = load_results(tmp_path / "mine")
    assert list(build_report(stored, meta).to_dict()["engines"]) == ["mine", "flat"]
