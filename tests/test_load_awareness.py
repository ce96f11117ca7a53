"""Load awareness (issue 19, item 7): every timed run records the machine's load average and
its CPU over wall time, and a run that did not get its cores is flagged."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest
from rich.console import Console

from annkit.cli.render import evaluation_table
from annkit.evaluate import measure_setting
from annkit.measure import Measure
from annkit.timing import (
    STARVED_SHARE,
    LoadClock,
    available_cores,
    cpu_seconds,
    load_flag,
    run_batch,
    time_runs,
)
from annkit.types import Evaluation, RunRecord, SearchResult

FLAG = re.compile(r"^(starved: CPU \d+\.\d of \d+|busy machine: load \d+\.\d on \d+ cores?)$")


@pytest.mark.parametrize(
    ("cpu_per_wall", "parallelism", "cores", "load", "expected"),
    [
        (0.97, 1, 2, 0.5, None),  # one busy thread on a quiet machine
        (0.5, 1, 2, 0.5, "starved: CPU 0.5 of 1"),
        (0.97, 1, 2, 3.4, "busy machine: load 3.4 on 2 cores"),  # load > cores
        (0.97, 1, 1, 1.5, "busy machine: load 1.5 on 1 core"),
        (1.9, 2, 2, 5.0, None),  # two threads that got both cores: the load rule is for 1
        (1.1, 2, 2, 0.1, "starved: CPU 1.1 of 2"),  # 1.1 < 0.8 x 2
        (1.7, 4, 2, 0.1, None),  # 4 threads on 2 cores can only get 2
        (1.5, 4, 2, 0.1, "starved: CPU 1.5 of 4"),  # 1.5 < 0.8 x min(4, 2)
        (3.0, 4, 8, 0.1, "starved: CPU 3.0 of 4"),
        (None, 1, 2, None, None),  # nothing measured: nothing flagged
    ],
)
def test_load_flag_on_given_numbers(cpu_per_wall, parallelism, cores, load, expected):
    assert load_flag(cpu_per_wall, parallelism, cores, load) == expected
    assert STARVED_SHARE == 0.8


def test_a_run_that_does_not_get_the_cpu_is_flagged_starved():
    """A search that spends its time waiting (as a thread does while other processes hold
    the cores) uses little CPU per wall second: time_runs measures that and flags it."""

    def waiting_search(queries: np.ndarray, k: int) -> SearchResult:
        time.sleep(0.05)
        ids = np.zeros((len(queries), k), dtype=np.int64)
        return SearchResult(ids=ids, distances=np.zeros((len(queries), k), dtype=np.float32))

    queries = np.zeros((4, 2), dtype=np.float32)
    timing = time_runs(lambda: run_batch(waiting_search, queries, 1), 2, 4, tolerance=0)
    load = timing.load
    assert load is not None and load.cpu_per_wall is not None
    assert 0 <= load.cpu_per_wall < 0.5
    assert load.cores == available_cores()
    flag = load.flag(1)
    assert flag is not None and flag.startswith("starved: CPU 0.")
    assert load.flag(2) is not None and load.flag(2).endswith(" of 2")


def test_busy_threads_use_cpu_and_are_counted():
    """CPU seconds count every thread of the process: two threads spinning for 0.3 s use
    about twice the wall time on two free cores, and at least some CPU on a loaded one."""
    import threading

    def spin(until: float) -> None:
        while time.perf_counter() < until:
            sum(range(1000))

    clock = LoadClock.start()
    until = time.perf_counter() + 0.3
    workers = [threading.Thread(target=spin, args=(until,)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    sample = clock.stop()
    assert sample.cpu_per_wall is not None
    # the GIL lets about one spinning Python thread run at a time: at most ~1 core
    assert 0.1 < sample.cpu_per_wall < available_cores() + 0.2
    assert cpu_seconds() > 0


def test_a_real_measurement_records_load_and_cpu(hnsw_words10k, words10k):
    evaluation = measure_setting(
        hnsw_words10k, words10k, Measure(k=10, runs=2), {"ef": 20}, with_slices=False
    )
    assert evaluation.load_average is None or evaluation.load_average >= 0
    assert evaluation.cpu_per_wall is not None
    # one search thread: at most about one core (plus the odd housekeeping thread)
    assert 0 < evaluation.cpu_per_wall < 1.5
    expected = load_flag(evaluation.cpu_per_wall, 1, available_cores(), evaluation.load_average)
    assert evaluation.starved == expected
    assert evaluation.starved is None or FLAG.match(evaluation.starved)
    out = evaluation.to_dict()
    assert out["cpu_per_wall"] == evaluation.cpu_per_wall and "starved" in out
    record = RunRecord.from_evaluation(evaluation, "hnsw-1")
    line = json.loads(json.dumps(record.to_dict()))
    assert line["load_average"] == evaluation.load_average
    assert RunRecord.from_dict(line).cpu_per_wall == evaluation.cpu_per_wall
    assert RunRecord.from_dict(line).starved == evaluation.starved
    # the evaluate table shows the timing row, and the flag when there is one
    console = Console(width=100, record=True)
    console.print(evaluation_table(evaluation))
    text = console.export_text()
    assert f"CPU {evaluation.cpu_per_wall:.2f} / wall" in text
    assert ("timing flag" in text) == (evaluation.starved is not None)


def test_a_flagged_evaluation_shows_its_flag():
    evaluation = Evaluation(
        engine="flat",
        build_params={},
        query_params={},
        metric="euclidean",
        k=1,
        mode="batch",
        queries=1,
        recall=1.0,
        qps=10.0,
        latency_ms={"p50": None, "p95": None, "p99": None, "mean": None},
        build_seconds=0.1,
        index_bytes=10,
        search_seconds=0.1,
        runs=1,
        per_query_recall=np.ones(1),
        cpu_per_wall=0.42,
        load_average=3.5,
        starved="starved: CPU 0.4 of 1",
    )
    console = Console(width=100, record=True)
    console.print(evaluation_table(evaluation))
    text = console.export_text()
    assert "starved: CPU 0.4 of 1: QPS may be low" in text
    assert "CPU 0.42 / wall, load 3.50" in text
