"""The HTML report (``annkit report --html``, ``bench --html``) opened in a real browser:
Debian's chromium, headless, driven by Python playwright (never ``playwright install``).
The page must load from file:// with no console error and no request beyond the file, draw
one point per setting, show a point's setting on hover, and redraw on the slice and axis
switches."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_runner import run_cli
from sweep_files import sweep_text

from annkit.bench.report import load_results

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_report_html_refuses_a_folder_that_is_not_results(tmp_path):
    (tmp_path / "notes.txt").write_text("not a sweep\n")
    target = tmp_path / "out.html"
    result = run_cli("report", tmp_path, "--html", target)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {tmp_path}: no runs.jsonl here (not an annkit bench results folder)\n"
    )
    assert not target.exists()


def test_report_html_refuses_html_with_another_format(tmp_path):
    result = run_cli("report", tmp_path, "--html", tmp_path / "a.html", "--json")
    assert result.exit_code == 2
    assert result.stderr.endswith(
        "Error: --html writes a page: drop --json, --markdown and --csv\n"
    )


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny real sweep on words-10k (faiss IVF and flat count their distance
    computations, hnsw does not) and its HTML page written by ``bench --html``."""
    root = tmp_path_factory.mktemp("html")
    (root / "sweep.toml").write_text(sweep_text("html-report-faiss-hnsw-flat"))
    page = root / "report.html"
    result = run_cli(
        "bench",
        root / "sweep.toml",
        "-o",
        root / "results",
        "--results-root",
        root,
        "--threads",
        "1",
        "--html",
        page,
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["html"] == str(page)
    return root / "results", page


@pytest.fixture(scope="module")
def browser():
    """Headless chromium (the system's), or a skip saying what is missing."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is absent (pip install -e '.[test]')"
    )
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def open_page(browser, path: Path):
    """The page opened from disk, with every console error, page error and request
    beyond file:// collected in ``page.problems``."""
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.set_default_timeout(10_000)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on(
        "request",
        lambda r: None if r.url.startswith("file://") else problems.append(f"request {r.url}"),
    )
    page.goto(path.as_uri())
    page.problems = problems
    return page


def drawn(page) -> dict[str, tuple[float, float]]:
    """(x, y) of every point on the plot by run_id (recall and QPS on the QPS axis, work
    and recall on the work axis)."""
    points = page.eval_on_selector_all(
        "#plot .pt", "nodes => nodes.map(n => [n.dataset.id, n.dataset.x, n.dataset.y])"
    )
    assert len({run_id for run_id, _, _ in points}) == len(points)  # one point per run
    return {run_id: (float(x), float(y)) for run_id, x, y in points}


@pytest.mark.slow
def test_html_report_in_a_real_browser(sweep, browser):
    results, path = sweep
    _, records, _ = load_results(results)
    settings = [r for r in records if r.usable]
    counted = [r for r in settings if r.distance_computations]
    assert len(settings) == 6 and 0 < len(counted) < len(settings)
    page = open_page(browser, path)
    try:
        # one point per setting, at its recall and QPS
        points = drawn(page)
        assert points == {r.run_id: (r.recall, r.qps) for r in settings}

        # hovering a point shows its setting, recall and QPS
        record = next(r for r in settings if r.engine == "hnsw")
        page.hover(f'#plot .pt[data-id="{record.run_id}"]')
        tip = page.locator("#tip")
        assert tip.is_visible()
        text = tip.inner_text()
        assert f"ef={record.query_params['ef']}" in text
        assert f"recall@10 {record.recall:.4f}" in text
        assert "QPS" in text and "not counted" in text

        # the slice switch redraws the series at the slice's recall
        page.select_option("#slice", "tail")
        on_tail = drawn(page)
        assert on_tail == {r.run_id: (r.slice_recall("tail"), r.qps) for r in settings}
        assert on_tail != points
        assert "recall@10 (tail)" in page.locator("#plot").text_content()

        # the axis switch: work draws only the runs that count their work
        page.select_option("#slice", "all")
        page.check("input[name=axis][value=work]")
        on_work = drawn(page)
        assert on_work == {r.run_id: (r.distance_computations, r.recall) for r in counted}
        assert "not counted (left out)" in page.locator("#axisnote").inner_text()
        assert "distance computations per query" in page.locator("#plot").text_content()
        page.check("input[name=axis][value=qps]")
        assert drawn(page) == points

        # the report's text and the worst queries of a chosen setting
        assert "Pareto-optimal runs" in page.locator("#tables").inner_text()
        page.select_option("#setting", record.run_id)
        worst = page.locator("#worst").inner_text()
        assert "missed" in worst and "true neighbours" in worst
        assert page.problems == []
    finally:
        page.close()


@pytest.mark.slow
def test_html_report_matches_report_command(sweep, browser, tmp_path):
    """``report --html`` writes the same page as ``bench --html`` for the same folder, and
    the page's headline is the report's."""
    results, from_bench = sweep
    target = tmp_path / "again.html"
    result = run_cli("report", results, "--html", target)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{target}\n"
    assert target.read_text() == from_bench.read_text()
    summary = json.loads(run_cli("report", results, "--json").stdout)
    best = summary["headlines"][0]["best"]
    page = open_page(browser, target)
    try:
        headline = page.locator("#tables ul").inner_text()
        assert f"{best['qps']:,.0f} QPS" in headline
        assert page.problems == []
    finally:
        page.close()


@pytest.mark.slow
def test_html_report_is_self_contained(sweep, tmp_path):
    """No URL the browser would fetch: no src=, href= or url( anywhere in the page, and
    it opens after its results folder is gone."""
    results, path = sweep
    copy = tmp_path / "copy"
    shutil.copytree(results, copy)
    target = tmp_path / "page.html"
    assert run_cli("report", copy, "--html", target).exit_code == 0
    shutil.rmtree(copy)
    text = target.read_text().replace('"http://www.w3.org/2000/svg"', "")  # SVG's namespace
    for needle in ("src=", "href=", "url(", "@import", "http://", "https://"):
        assert needle not in text


@pytest.mark.slow
def test_adapt_html_draws_every_frontier_point(hnsw_words10k, browser, tmp_path):
    page_path = tmp_path / "adapt.html"
    result = run_cli(
        "adapt",
        hnsw_words10k.path,
        "words-10k",
        "--kind",
        "threshold",
        "--folds",
        "2",
        "--grid",
        "10,20,40,80",
        "--max-queries",
        "300",
        "-o",
        tmp_path / "p.json",
        "--force",
        "--html",
        page_path,
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["html"] == str(page_path)
    expected = {
        f"{name}-{number}": (point["recall"], point["qps"])
        for name, points in report["frontiers"].items()
        for number, point in enumerate(points)
    }
    page = open_page(browser, page_path)
    try:
        assert drawn(page) == expected
        page.select_option("#slice", "tail")
        on_tail = drawn(page)
        assert on_tail == {
            f"{name}-{number}": (point["slices"]["tail"]["recall"], point["qps"])
            for name, points in report["frontiers"].items()
            for number, point in enumerate(points)
        }
        assert "policies against uniform effort" in page.locator("#tables").inner_text()
        assert page.problems == []
    finally:
        page.close()


@pytest.mark.slow
def test_stream_html_draws_every_search_step(browser, tmp_path):
    runbook = tmp_path / "window.yaml"
    made = run_cli(
        "stream", "make-runbook", "sliding-window", "words-10k", "-o", runbook,
        "--searches", "3", "--window", "4000",
    )  # fmt: skip
    assert made.exit_code == 0, made.stderr
    page_path = tmp_path / "stream.html"
    result = run_cli(
        "stream", runbook, "words-10k", "-e", "hnsw", "-p", "M=8", "-p", "ef=40",
        "-o", tmp_path / "out", "--rebuild-every", "2", "--html", page_path, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    steps = [s for s in json.loads(result.stdout)["steps"] if s.get("recall") is not None]
    expected = {f"0-live-{s['step']}": (s["step"], s["recall"]) for s in steps}
    expected |= {
        f"0-fresh-{s['step']}": (s["step"], s["fresh"]["recall"]) for s in steps if s["fresh"]
    }
    assert len(expected) > len(steps)  # fresh builds beside the live index
    page = open_page(browser, page_path)
    try:
        assert drawn(page) == expected  # x: the runbook step
        page.hover(f'#plot .pt[data-id="0-live-{steps[-1]["step"]}"]')
        assert f"step {steps[-1]['step']} (live)" in page.locator("#tip").inner_text()
        page.check("input[name=axis][value=qps]")
        assert set(drawn(page)) == set(expected)
        assert page.problems == []
    finally:
        page.close()
    again = tmp_path / "again.html"
    plotted = run_cli("stream", "plot", tmp_path / "out", "-o", again)
    assert plotted.exit_code == 0 and plotted.stdout == f"{again}\n"
    assert again.read_text() == page_path.read_text()


@pytest.mark.slow
def test_filtered_html_switches_to_a_selectivity_band(browser, tmp_path):
    """A filtered sweep's page lists its selectivity bands as slices, moves each point to
    the band's recall, and shows the fastest strategy per band."""
    (tmp_path / "sweep.toml").write_text(sweep_text("html-report-filtered-faiss"))
    page_path = tmp_path / "filtered.html"
    result = run_cli(
        "bench", tmp_path / "sweep.toml", "-o", tmp_path / "out", "--results-root", tmp_path,
        "--threads", "1", "-q", "--html", page_path,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    _, records, _ = load_results(tmp_path / "out")
    bands = [name for name in records[0].slices or {} if name.startswith("sel")]
    assert bands
    page = open_page(browser, page_path)
    try:
        options = page.eval_on_selector_all("#slice option", "nodes => nodes.map(n => n.value)")
        assert set(bands) <= set(options)
        page.select_option("#slice", bands[0])
        assert drawn(page) == {r.run_id: (r.slice_recall(bands[0]), r.qps) for r in records}
        tables = page.locator("#tables").inner_text()
        assert "fastest filter strategy per selectivity band" in tables
        assert page.problems == []
    finally:
        page.close()
