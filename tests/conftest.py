"""Shared fixtures: the bundled real dataset, the shared 100k dataset (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from annkit.io import load_dataset
from annkit.types import Dataset

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data" / "words-minilm-384-angular.hdf5"


@pytest.fixture(scope="session")
def words10k() -> Dataset:
    """The bundled real dataset (10,000 x 384 angular, 1,000 queries, weights)."""
    return load_dataset("words-10k")


@pytest.fixture(scope="session")
def shared_words() -> Path:
    """Path of the shared 100k dataset; skips where ../shared is absent (a user's clone)."""
    if not SHARED_DATA.is_file():
        pytest.skip(f"shared dataset not found at {SHARED_DATA} (only on development machines)")
    return SHARED_DATA


@pytest.fixture()
def tiny_dataset() -> Dataset:
    """A tiny seeded euclidean dataset for fast unit tests."""
    rng = np.random.default_rng(7)
    base = rng.standard_normal((600, 16)).astype(np.float32)
    queries = rng.standard_normal((40, 16)).astype(np.float32)
    return Dataset(name="tiny", metric="euclidean", base=base, queries=queries)


#: tests measured at 0.85 s or more (call + setup) in the quick loop on the 2-core machine
#: (pytest -m "not slow" --durations): marked slow so that loop stays short; CI runs them
MEASURED_SLOW = frozenset(
    {
        "tests/bench/test_bench_runner.py::test_cached_indexes_are_reused_by_later_sweeps",
        "tests/bench/test_bench_timing.py::test_sweep_records_keep_every_run_and_stop_by_the_tolerance",
        "tests/bench/test_work_report.py::test_report_json_carries_dist_per_query_and_its_tail",
        "tests/cli/test_bench_cli.py::test_second_sweep_reuses_cached_indexes",
        "tests/cli/test_bench_cli.py::test_sweep_writes_one_valid_record_per_setting",
        "tests/cli/test_compare_cli.py::test_bench_with_baseline_rebuilds_and_passes",
        "tests/cli/test_core_cli.py::test_evaluate_json",
        "tests/cli/test_core_cli.py::test_evaluate_shows_distance_computations_where_the_engine_counts",
        "tests/cli/test_effort_tune_cli.py::test_effort_json_and_per_query_csv",
        "tests/cli/test_issue11_examples.py::test_every_example_runs",
        "tests/cli/test_issue11_g2.py::test_a_default_and_its_explicit_value_share_one_cached_index",
        "tests/cli/test_issue11_g2.py::test_bench_prints_one_plain_line_per_setting_when_stderr_is_not_a_terminal",
        "tests/cli/test_issue11_g2.py::test_bench_records_carry_the_rule",
        "tests/cli/test_issue11_g2.py::test_bench_says_when_k_is_deeper_than_the_ground_truth",
        "tests/cli/test_issue11_g2.py::test_effort_all_slices_and_the_old_name",
        "tests/cli/test_issue11_g2.py::test_effort_and_tune_take_the_rule",
        "tests/cli/test_issue11_g2.py::test_perquery_h5_keeps_the_returned_ids",
        "tests/cli/test_issue11_g2.py::test_strict_recall_matches_an_independent_count_on_words10k",
        "tests/cli/test_issue11_g2.py::test_tune_reuses_an_index_bench_cached",
        "tests/cli/test_issue11_interrupt.py::test_ctrl_c_stops_a_long_batch_search_at_once",
        "tests/cli/test_issue11_interrupt.py::test_ctrl_c_stops_a_long_native_build_at_once",
        "tests/cli/test_tables_80.py::test_effort_table",
        "tests/cli/test_tables_80.py::test_evaluate_table",
        "tests/test_adaptive.py::test_cross_fitting_never_scores_a_query_with_a_policy_trained_on_it",
        "tests/test_adaptive.py::test_query_and_evaluate_with_a_policy",
        "tests/test_adaptive.py::test_reported_work_is_the_sum_of_the_engine_counts_over_stages",
        "tests/test_adaptive.py::test_risk_model_searches_again_exactly_the_queries_it_flags",
        "tests/bench/test_bench_report.py::test_plot_is_a_png_written_atomically",
        "tests/test_effort.py::test_reported_minimum_reaches_target_and_previous_value_does_not",
        "tests/test_engines.py::test_contract_recall_and_save_load[annoy]",
        "tests/test_engines.py::test_contract_recall_and_save_load[faiss]",
        "tests/test_engines.py::test_contract_recall_and_save_load[hnsw]",
        "tests/test_engines.py::test_contract_recall_and_save_load[ivfpq]",
        "tests/test_engines.py::test_contract_recall_and_save_load[usearch]",
        "tests/test_engines.py::test_contract_search[annoy]",
        "tests/test_engines.py::test_contract_search[hnsw]",
        "tests/test_engines.py::test_contract_search[ivfpq]",
        "tests/test_engines.py::test_contract_search[scann]",
        "tests/test_engines.py::test_contract_search[usearch]",
        "tests/test_engines.py::test_top1_distance_agrees_with_flat",
        "tests/test_evaluate.py::test_batch_and_single",
        "tests/test_evaluate.py::test_more_effort_more_recall",
        "tests/test_memory.py::test_bench_records_a_build_that_cannot_fit_and_can_be_forced",
        "tests/test_new_engines.py::test_faiss_opq_ivf_pq_counts_every_list_when_all_are_probed",
        "tests/test_new_engines.py::test_scann_recall_no_counts_and_quiet",
        "tests/test_plugins.py::test_registered_engine_through_bench",
        "tests/test_ray.py::test_ground_truth_on_ray_keeps_the_tie_rule[euclidean]",
        "tests/test_ray.py::test_groundtruth_cli_with_ray_writes_the_local_result",
        "tests/test_tune.py::test_cached_indexes_are_reused_and_unreached_targets_reported",
        "tests/test_work_slices.py::test_an_engine_that_cannot_count_has_no_cost_tail",
        "tests/test_work_slices.py::test_evaluate_tables_show_the_cost_tail",
    }
)

#: whole groups whose shared fixtures are slow to set up (a local Ray instance, sweeps run
#: once per module, the contract indexes of the engines slowest to build): the quick loop
#: keeps the contract tests of hnsw, faiss, flat and the rest of the CLI
SLOW_PREFIXES = (
    "tests/test_ray.py::",
    "tests/bench/test_work_report.py::",
    "tests/cli/test_tables_80.py::",
    "tests/cli/test_bench_cli.py::",
)
SLOW_PARTS = tuple(
    f"tests/test_engines.py::{test}[{engine}]"
    for test in (
        "test_contract_search",
        "test_contract_recall_and_save_load",
        "test_contract_damaged_payload_refused",
        "test_contract_payload_not_fitting_its_manifest_refused",
    )
    for engine in ("ivfpq", "usearch", "annoy", "scann")
) + (
    "test_effort.py::test_bisection_matches_a_full_scan_on_a_sample",
    "test_compare_cli.py::test_bench_with_a_better_baseline_fails",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on the shared 100k dataset are slow (and need ../shared), and so are the tests
    in :data:`MEASURED_SLOW`: ``-m "not slow"`` leaves them out."""
    for item in items:
        if (
            item.nodeid in MEASURED_SLOW
            or item.nodeid.startswith(SLOW_PREFIXES)
            or any(part in item.nodeid for part in SLOW_PARTS)
        ):
            item.add_marker(pytest.mark.slow)
        if "shared_words" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.shared)
