"""Issue 24: how big is the HTML report of a 50-setting sweep, and how fast does it render in
headless Chromium? Targets: at most 3 MB, rendered in under 2 s.

    python benchmarks/bench_html.py --results RESULTS_DIR [--repeats 7]
        [--alternatives-python /tmp/altvenv/bin/python] [--output results/html_report.json]

RESULTS_DIR is a results folder of about 50 settings: the built-in default sweep's (51
settings on words-10k; ``annkit bench -o default`` makes one in a few minutes). The script

1. writes the page with ``annkit report RESULTS --html`` (child process, timed) and records
   its size, and what it holds (settings, slices, worst queries);
2. opens it ``--repeats`` times in headless Chromium (Debian's /usr/bin/chromium through
   playwright, a fresh browser context each time): the time from navigation to the drawn
   plot (every point in the DOM, then one animation frame), and the page's own mark set
   when its script has drawn everything (performance.mark, from navigation start);
3. with ``--alternatives-python`` (a throwaway venv with plotly, bokeh, altair and
   vl-convert-python; never annkit's), draws the same settings' recall against QPS with
   hover in each library, inline (offline) resources, and measures them the same way. The
   alternatives draw the ``all`` slice only, no tables: a lower bound on their size.

Medians with min and max over the repeats. Writes results/html_report.json atomically.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT, parser, run_annkit, utc_now, write_figures

CHROMIUM = "/usr/bin/chromium"
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
#: the report's targets (issue 24)
MAX_BYTES = 3_000_000
MAX_RENDER_SECONDS = 2.0

#: what marks a drawn plot in each page (playwright CSS selectors pierce shadow roots)
DRAWN = {
    "annkit": "#plot .pt",
    "plotly": ".scatterlayer .point",
    "bokeh": "canvas",
    "altair": ".vega-embed canvas, .vega-embed svg",
}

#: run by --alternatives-python: the same points drawn by each library, offline resources
ALTERNATIVES = r"""
import json, sys
points = json.load(sys.stdin)
out = sys.argv[1]
import plotly.graph_objects as go
figure = go.Figure()
for series in dict.fromkeys(p["series"] for p in points):
    mine = [p for p in points if p["series"] == series]
    figure.add_trace(go.Scatter(
        x=[p["recall"] for p in mine], y=[p["qps"] for p in mine], mode="lines+markers",
        name=series, text=[p["setting"] for p in mine],
        customdata=[[p["p5"], p["work"], p["qps_min"], p["qps_max"]] for p in mine],
        hovertemplate="%{text}<br>recall %{x:.4f} p5 %{customdata[0]}<br>QPS %{y:,.0f} "
        "(%{customdata[2]:,.0f}-%{customdata[3]:,.0f})<br>work %{customdata[1]}",
    ))
figure.update_yaxes(type="log")
figure.write_html(out + "/plotly.html", include_plotlyjs=True, full_html=True)

from bokeh.embed import file_html
from bokeh.models import ColumnDataSource, HoverTool
from bokeh.plotting import figure as bokeh_figure
from bokeh.resources import INLINE
plot = bokeh_figure(y_axis_type="log", width=860, height=520)
palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]
for number, series in enumerate(dict.fromkeys(p["series"] for p in points)):
    mine = [p for p in points if p["series"] == series]
    source = ColumnDataSource({key: [p[key] for p in mine] for key in mine[0]})
    colour = palette[number % len(palette)]
    plot.line("recall", "qps", source=source, color=colour, legend_label=series)
    plot.scatter("recall", "qps", source=source, color=colour)
plot.add_tools(HoverTool(tooltips=[("setting", "@setting"), ("recall", "@recall"),
                                   ("p5", "@p5"), ("QPS", "@qps"), ("work", "@work")]))
with open(out + "/bokeh.html", "w") as handle:
    handle.write(file_html(plot, INLINE, "bokeh"))

import altair
chart = altair.Chart(altair.Data(values=points)).mark_line(point=True).encode(
    x="recall:Q", y=altair.Y("qps:Q", scale=altair.Scale(type="log")), color="series:N",
    tooltip=["series:N", "setting:N", "recall:Q", "p5:Q", "qps:Q", "work:Q"],
)
chart.save(out + "/altair.html", inline=True)
import importlib.metadata as metadata
print(json.dumps({name: metadata.version(name)
                  for name in ("plotly", "bokeh", "altair", "vl-convert-python")}))
"""


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def render_times(path: Path, drawn: str, repeats: int) -> dict[str, Any]:
    """Seconds from navigation to a drawn plot (the ``drawn`` elements in the DOM, then one
    animation frame), each time in a fresh browser context; the page's own ``annkit-drawn``
    mark where it sets one; console errors and requests beyond file://."""
    from playwright.sync_api import sync_playwright

    seconds: list[float] = []
    marks: list[float] = []
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for _ in range(repeats):
                context = browser.new_context(viewport={"width": 1000, "height": 900})
                page = context.new_page()
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                page.on(
                    "request",
                    lambda r: (
                        None if r.url.startswith(("file:", "data:")) else problems.append(r.url)
                    ),
                )
                started = time.perf_counter()
                page.goto(path.as_uri(), wait_until="commit")
                page.wait_for_selector(drawn, state="attached", timeout=60_000)
                page.evaluate("() => new Promise(done => requestAnimationFrame(() => done()))")
                seconds.append(time.perf_counter() - started)
                mark = page.evaluate(
                    "() => (performance.getEntriesByName('annkit-drawn')[0] || {}).startTime"
                )
                if mark is not None:
                    marks.append(mark / 1000)
                context.close()
        finally:
            browser.close()
    return {
        "render_seconds": spread(seconds),
        "runs": seconds,
        "drawn_mark_seconds": spread(marks) if marks else None,
        "problems": sorted(set(problems)),
    }


def main() -> None:
    made = parser(__doc__, output="html_report.json", repeats=7)
    made.add_argument("--results", type=Path, required=True, help="a ~50-setting results folder")
    made.add_argument(
        "--alternatives-python",
        type=Path,
        default=None,
        help="python of a throwaway venv with plotly, bokeh, altair, vl-convert-python",
    )
    args = made.parse_args()
    from annkit.bench.report import load_results

    _, records, _ = load_results(args.results)
    settings = sum(record.usable for record in records)
    work = Path(tempfile.mkdtemp(prefix="annkit-bench-html-"))
    page = work / "report.html"
    generation = []
    for _ in range(3):
        seconds, _ = run_annkit("report", str(args.results), "--html", str(page))
        generation.append(seconds)
    text = page.read_text(encoding="utf-8")
    start = text.index("const DATA = ") + len("const DATA = ")
    data = json.loads(text[start : text.index(";\n(function", start)].replace("<\\/", "</"))
    figures: dict[str, Any] = {
        "date": utc_now(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "results": str(args.results),
        "settings": settings,
        "slices": len(data["slices"]),
        "worst_query_settings": len(data["worst"]),
        "targets": {"max_bytes": MAX_BYTES, "max_render_seconds": MAX_RENDER_SECONDS},
        "annkit": {
            "bytes": page.stat().st_size,
            "generate_seconds": spread(generation),
            **render_times(page, DRAWN["annkit"], args.repeats),
        },
    }
    annkit = figures["annkit"]
    annkit["meets_targets"] = (
        annkit["bytes"] <= MAX_BYTES
        and annkit["render_seconds"]["median"] < MAX_RENDER_SECONDS
        and not annkit["problems"]
    )
    if args.alternatives_python is not None:
        points = [
            {**data["settings"][row[0]], **dict(zip(data["point_fields"], row, strict=True))}
            for row in data["slices"][0]["points"]
        ]
        made_pages = subprocess.run(
            [str(args.alternatives_python), "-c", ALTERNATIVES, str(work)],
            input=json.dumps(points),
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        figures["alternative_versions"] = json.loads(made_pages.stdout)
        figures["alternatives"] = {
            name: {
                "bytes": (work / f"{name}.html").stat().st_size,
                **render_times(work / f"{name}.html", DRAWN[name], args.repeats),
            }
            for name in ("plotly", "bokeh", "altair")
        }
    path = write_figures(args.output, figures)
    print(f"annkit: {annkit['bytes']:,} bytes, render median {annkit['render_seconds']}")
    for name, entry in figures.get("alternatives", {}).items():
        print(f"{name}: {entry['bytes']:,} bytes, render median {entry['render_seconds']}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
