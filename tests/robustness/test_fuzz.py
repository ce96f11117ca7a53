"""Fuzz: thousands of seeded damaged files through every reader and the bundle loader.

Each damaged file is loaded in a child process (many per child, a watchdog around it), so
a crash or a hang is caught and pinned on the file that caused it. Every file must either
load (a harmless change, e.g. a flipped bit in a float) or be refused with an annkit error
whose message is one line; no other exception type, no signal death, no hang. A sample of
the refused files then goes through the real ``annkit`` command: exit code 2, one line on
stderr, no traceback.

Set ANNKIT_ROBUSTNESS_REPORT to a folder to get the per-category counts as JSON there.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fuzz_damage import build_corpus
from fuzz_harness import Case, run_cases, summarise

SEED = 20240601
ROOT = Path(__file__).resolve().parents[2]
CLI_SAMPLE = 64  # commands run through the real CLI (about 0.4 s each)
FORMATS = ("fvecs", "bvecs", "ivecs", "fbin", "u8bin", "i8bin", "ibin", "npy", "hdf5", "bundle")


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    cases = build_corpus(folder, SEED)
    verdicts = run_cases(cases, folder / "work", workers=2)
    summary = summarise(verdicts)
    report = os.environ.get("ANNKIT_ROBUSTNESS_REPORT")
    if report:
        Path(report).mkdir(parents=True, exist_ok=True)
        totals = Counter()
        for row in summary.values():
            totals.update(row)
        Path(report, "fuzz.json").write_text(
            json.dumps({"seed": SEED, "total": dict(totals), "categories": summary}, indent=1)
        )
    yield folder, verdicts, summary
    shutil.rmtree(folder, ignore_errors=True)  # ~170 MB of small files


FILE_DAMAGE = {"truncation", "bit flip", "byte overwrite", "shift"}
BUNDLE_DAMAGE = {
    "payload truncation",
    "payload bit flip",
    "payload swap",
    "manifest",
    "manifest truncation",
    "manifest bit flip",
    "manifest byte overwrite",
}


@pytest.mark.slow
def test_corpus_covers_every_format_and_damage_kind(fuzzed):
    _, verdicts, summary = fuzzed
    assert len(verdicts) >= 10_000
    for fmt in FORMATS:
        kinds = {category[len(fmt) + 1 :] for category in summary if category.startswith(f"{fmt} ")}
        assert (BUNDLE_DAMAGE if fmt == "bundle" else FILE_DAMAGE) <= kinds, (fmt, kinds)
        if fmt in ("fvecs", "bvecs", "ivecs", "fbin", "u8bin", "i8bin", "ibin", "npy"):
            assert "header value" in kinds, fmt
    assert summary["hdf5 structure"]["cases"] >= 60
    assert summary["bundle manifest"]["cases"] >= 400


@pytest.mark.slow
def test_undamaged_files_load(fuzzed):
    """The harness must see success where there is success (or every check below is void)."""
    _, verdicts, _ = fuzzed
    valid = [
        v
        for v in verdicts
        if v.case.category.endswith(" valid")
        or (v.case.category == "hdf5 structure" and v.case.label.startswith("valid"))
    ]
    from annkit.engines import engine_names

    bundles = len(engine_names())  # one per registered engine
    assert len(valid) == 13 + bundles
    for verdict in valid:
        assert verdict.crash is None and all(r == "ok" for _, r in verdict.outcome), verdict


@pytest.mark.slow
def test_no_crash_no_hang_and_only_one_line_annkit_errors(fuzzed):
    _, verdicts, _ = fuzzed
    problems = [problem for verdict in verdicts for problem in verdict.problems()]
    assert problems == [], f"{len(problems)} problems, first: {problems[:20]}"


@pytest.mark.slow
def test_a_truncated_vecs_file_loads_only_when_whole_records_remain(fuzzed):
    _, verdicts, _ = fuzzed
    record = {"fvecs": 4 + 8 * 4, "bvecs": 4 + 8, "ivecs": 4 + 5 * 4}
    checked = 0
    for verdict in verdicts:
        fmt, _, damage = verdict.case.category.partition(" ")
        if fmt in record and damage == "truncation":
            size = Path(verdict.case.path).stat().st_size
            loaded = all(r == "ok" for _, r in verdict.outcome)
            assert loaded == (size > 0 and size % record[fmt] == 0), verdict
            checked += 1
    assert checked >= 100


@pytest.mark.slow
@pytest.mark.parametrize(
    "category",
    [
        "fbin truncation",
        "u8bin truncation",
        "i8bin truncation",
        "ibin truncation",
        "npy truncation",
        "hdf5 truncation",
        "fvecs shift",
        "fbin shift",
        "ivecs shift",
        "fvecs header value",
        "ivecs header value",
        "bundle payload bit flip",
        "bundle payload truncation",
        "bundle payload shift",
        "bundle payload byte overwrite",
        "bundle payload swap",
        "bundle manifest truncation",
        "pair mismatch",
        "fvecs values",
        "fbin values",
        "npy values",
        "ibin values",
    ],
)
def test_damage_that_changes_sizes_or_checksums_is_always_refused(fuzzed, category):
    """No truncated / shifted file, no changed payload and no bad value slips through."""
    _, verdicts, _ = fuzzed
    chosen = [v for v in verdicts if v.case.category == category]
    assert chosen
    loaded = [v.case.label for v in chosen if all(r == "ok" for _, r in v.outcome)]
    assert loaded == [], loaded


@pytest.mark.slow
def test_unsafe_payload_names_are_refused_before_anything_is_read(fuzzed):
    _, verdicts, _ = fuzzed
    chosen = [
        v
        for v in verdicts
        if v.case.category == "bundle manifest"
        and "files lists" in v.case.label
        and "too" not in v.case.label
    ]
    assert len(chosen) >= 100
    for verdict in chosen:
        manifest_result = dict(verdict.outcome)["read_manifest"]
        assert manifest_result.startswith("annkit:BundleError:"), verdict
        assert "unsafe payload file" in manifest_result, verdict


@pytest.mark.slow
def test_harness_pins_signal_deaths_hangs_and_stray_exceptions(tmp_path):
    """The watchdog itself: a case that kills the child, one that hangs and one raising a
    non-annkit exception are each reported against the right case; the rest still run."""
    good = tmp_path / "good.fvecs"
    good.write_bytes(np.array([2], "<i4").tobytes() + np.ones(2, "<f4").tobytes())
    cases = [
        Case("vectors", str(good), "ok", "first"),
        Case("selftest-crash", str(good), "crash", "segfault"),
        Case("vectors", str(good), "ok", "after the crash"),
        Case("selftest-hang", str(good), "hang", "sleeps"),
        Case("selftest-raise", str(good), "raise", "ValueError"),
        Case("vectors", str(good), "ok", "last"),
    ]
    verdicts = run_cases(cases, tmp_path / "work", workers=1, stall_seconds=3)
    assert [v.crash for v in verdicts] == [
        None,
        "died by SIGSEGV",
        None,
        "hang (no progress for 3s)",
        None,
        None,
    ]
    assert verdicts[4].outcome == [["raise", "other:ValueError:not an annkit error"]]
    assert all(r == "ok" for v in (verdicts[0], verdicts[2], verdicts[5]) for _, r in v.outcome)
    assert summarise(verdicts)["raise"]["other_exceptions"] == 1
    assert len([p for v in verdicts for p in v.problems()]) == 3


# ------------------------------------------------------------------------- real CLI


def _cli_sample(verdicts: list, tmp_path: Path) -> list[tuple[list[str], str]]:
    """(annkit arguments, name the message must contain) for a seeded sample of refused
    files: ``info`` on files refused by their header, ``build`` on files refused while
    reading the data, ``info`` / ``query`` on refused bundles."""
    rng = random.Random(SEED)
    queries = tmp_path / "queries16.npy"
    np.save(queries, np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32))

    def refused(verdict, operation: str) -> bool:
        return dict(verdict.outcome).get(operation, "ok").startswith("annkit:")

    by_category: dict[str, list] = {}
    for verdict in verdicts:
        by_category.setdefault(verdict.case.category, []).append(verdict)
    commands: list[tuple[list[str], str]] = []
    for category in sorted(by_category):
        chosen = by_category[category]
        path = None
        if chosen[0].case.kind in ("vectors", "ids", "hdf5"):
            header = [v for v in chosen if refused(v, "describe")]
            if header:
                path = rng.choice(header).case.path
                commands.append((["info", path], Path(path).name))
            data = [
                v
                for v in chosen
                if not refused(v, "describe")
                and refused(v, "read_vectors" if v.case.kind != "hdf5" else "open_base")
                and v.case.kind != "ids"
            ]
            if data:
                path = rng.choice(data).case.path
                commands.append(
                    (
                        [
                            "build",
                            path,
                            "-e",
                            "flat",
                            "--metric",
                            "angular",
                            "-o",
                            str(tmp_path / "never"),
                        ],
                        Path(path).name,
                    )
                )
        elif chosen[0].case.kind == "bundle":
            manifest = [v for v in chosen if refused(v, "read_manifest")]
            for verdict in rng.sample(manifest, min(1, len(manifest))):
                commands.append((["info", verdict.case.path], Path(verdict.case.path).name))
            loading = [v for v in chosen if refused(v, "load_and_search")]
            for verdict in rng.sample(loading, min(2, len(loading))):
                commands.append(
                    (
                        ["query", verdict.case.path, str(queries), "-o", str(tmp_path / "out.npy")],
                        Path(verdict.case.path).name,
                    )
                )
    return rng.sample(commands, min(CLI_SAMPLE, len(commands)))


@pytest.mark.slow
def test_real_cli_on_a_sample_of_damaged_files(fuzzed, tmp_path):
    _, verdicts, _ = fuzzed
    commands = _cli_sample(verdicts, tmp_path)
    assert len(commands) == CLI_SAMPLE

    def run(command: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "annkit", *command],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, [command for command, _ in commands]))
    failures = []
    for (command, name), done in zip(commands, results, strict=True):
        lines = done.stderr.splitlines()
        if (
            done.returncode != 2
            or len(lines) != 1
            or not lines[0].startswith("Error: ")
            or name not in lines[0]
            or "Traceback" in done.stderr
            or "unexpected" in done.stderr
            or done.stdout
        ):
            failures.append((command, done.returncode, done.stderr[-500:]))
    assert failures == []
    assert not (tmp_path / "never").exists() and not (tmp_path / "out.npy").exists()


def test_nothing_is_ever_unpickled():
    """No loader can run code from a file: no pickle module, no allow_pickle=True."""
    offenders = []
    for path in sorted((ROOT / "annkit").rglob("*.py")) + sorted((ROOT / "cli").rglob("*.py")):
        text = path.read_text()
        for pattern in (
            "import pickle",
            "from pickle",
            "pickle.load",
            "allow_pickle=True",
            "cPickle",
            "dill",
            "joblib.load",
            "torch.load",
            "pandas.read_pickle",
        ):
            if pattern in text:
                offenders.append(f"{path.relative_to(ROOT)}: {pattern}")
        for line in text.splitlines():
            if "np.load(" in line and "allow_pickle=False" not in line:
                offenders.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert offenders == []
