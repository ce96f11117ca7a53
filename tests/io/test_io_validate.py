"""validate_vectors: NaN/inf, zero vectors under angular, empty input, bounded blocks."""

from __future__ import annotations

import numpy as np
import pytest

from annkit.errors import DatasetError
from annkit.io import read_vectors, validate_vectors, write_vectors


def test_clean_vectors_pass(rng):
    validate_vectors(rng.standard_normal((10, 3)).astype(np.float32), "x", "angular")


def test_nan_rows(rng):
    data = rng.standard_normal((10, 3)).astype(np.float32)
    data[3, 1] = np.nan
    data[7, 0] = np.nan
    data[7, 2] = np.nan
    with pytest.raises(DatasetError) as excinfo:
        validate_vectors(data, "base.fvecs", "euclidean")
    assert str(excinfo.value) == "base.fvecs: 2 of 10 rows contain NaN or inf values (first: row 3)"


def test_inf_rows(rng):
    data = rng.standard_normal((5, 3)).astype(np.float32)
    data[4, 2] = -np.inf
    with pytest.raises(
        DatasetError,
        match=r"^q: 1 of 5 rows contain NaN or inf values "
        r"\(first: row 4\)$",
    ):
        validate_vectors(data, "q", "ip")


def test_zero_vector_is_an_error_only_under_angular(rng):
    data = rng.standard_normal((6, 3)).astype(np.float32)
    data[2] = 0.0
    data[5] = -0.0
    validate_vectors(data, "base", "euclidean")
    validate_vectors(data, "base", "ip")
    with pytest.raises(DatasetError) as excinfo:
        validate_vectors(data, "base", "angular")
    assert str(excinfo.value) == (
        "base: 2 of 6 rows are zero vectors, which have no direction under the angular metric "
        "(first: row 2); remove them or use another metric"
    )


def test_tiny_but_nonzero_vector_is_fine_under_angular():
    validate_vectors(np.full((2, 3), 1e-30, dtype=np.float32), "base", "angular")


def test_empty_and_wrong_ndim():
    with pytest.raises(DatasetError, match=r"^q: empty: no vectors \(shape \(0, 4\)\)$"):
        validate_vectors(np.zeros((0, 4), dtype=np.float32), "q", "euclidean")
    with pytest.raises(DatasetError, match=r"^q: expected a 2-D \(n, d\) array"):
        validate_vectors(np.zeros(4, dtype=np.float32), "q", "euclidean")


def test_blocks_report_global_row_index_on_a_memmap(tmp_path):
    # 70,000 rows spans two 65,536-row blocks; the bad rows sit in the second block.
    data = np.ones((70_000, 2), dtype=np.float32)
    data[65_540] = np.inf
    data[69_999] = np.nan
    write_vectors(tmp_path / "big.fbin", data)
    mapped = read_vectors(tmp_path / "big.fbin")
    assert isinstance(mapped, np.memmap)
    with pytest.raises(DatasetError, match=r"^big: 2 of 70000 rows .* \(first: row 65540\)$"):
        validate_vectors(mapped, "big", "euclidean")


def test_integer_arrays_are_accepted():
    validate_vectors(np.array([[1, 2], [3, 4]], dtype=np.uint8), "b", "angular")
