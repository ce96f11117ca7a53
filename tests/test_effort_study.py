"""annkit.effort_study.study_effort (behind ``annkit effort``) and annkit.bundle.build_bundle
(behind ``annkit build``): one call each, the same numbers as their parts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from annkit.bundle import build_bundle, load_bundle
from annkit.effort import minimum_effort
from annkit.effort_study import study_effort
from annkit.errors import InputError, ParamError
from annkit.types import Dataset

GRID = [10, 20, 40, 80]


@pytest.fixture(scope="module")
def hnsw_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("study") / "hnsw"
    built = build_bundle(
        "words-10k", "hnsw", output, params={"M": "8", "ef_construction": "50"}, threads=1
    )
    assert built.engine == "hnsw" and built.build_params["M"] == 8
    assert (built.count, built.dim, built.metric) == (10_000, 384, "angular")
    assert built.index_bytes > 0 and json.loads(json.dumps(built.to_dict())) == built.to_dict()
    return output


def test_build_bundle_refuses_an_existing_output_and_unknown_params(hnsw_index, tmp_path):
    with pytest.raises(InputError, match="already exists"):
        build_bundle("words-10k", "hnsw", hnsw_index)
    with pytest.raises(ParamError, match="no build parameter 'efc'"):
        build_bundle(tmp_path / "not-read.fvecs", "hnsw", tmp_path / "x", params={"efc": "1"})


def test_study_equals_minimum_effort_and_writes_the_csv(hnsw_index, words10k: Dataset, tmp_path):
    table = tmp_path / "effort.csv"
    study = study_effort(hnsw_index, "words-10k", k=10, target=0.9, grid=GRID, per_query_file=table)
    direct = minimum_effort(load_bundle(hnsw_index), words10k, 10, 0.9, GRID)
    np.testing.assert_array_equal(study.result.min_effort, direct.min_effort)
    assert study.report["index"] == str(hnsw_index) == study.index
    assert study.report["grid"] == GRID and study.report["queries"] == words10k.n_queries
    assert study.to_dict() == study.report
    assert len(table.read_text().splitlines()) == words10k.n_queries + 1
    assert study.query_text is not None and len(study.query_text) == words10k.n_queries


def test_study_refuses_before_reading_the_data(hnsw_index, tmp_path):
    missing = tmp_path / "never-opened.hdf5"
    with pytest.raises(ParamError, match="no query parameter 'efs'"):
        study_effort(hnsw_index, missing, query_params={"efs": "3"})
    with pytest.raises(ParamError, match="ef: must be >= 1, got 0"):
        study_effort(hnsw_index, missing, grid=["0", "10"])
    flat = tmp_path / "flat"
    build_bundle("words-10k", "flat", flat)
    with pytest.raises(ParamError, match="has no effort parameter"):
        study_effort(flat, missing)
