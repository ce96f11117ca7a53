"""Property: any float32 array survives .fbin and .fvecs bit for bit."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from annkit.io import read_vectors, write_vectors

float32_matrices = arrays(
    dtype=np.float32,
    shape=st.tuples(st.integers(1, 20), st.integers(1, 12)),
    elements=st.floats(width=32, allow_nan=True, allow_infinity=True),
)


@settings(max_examples=60, deadline=None)
@given(data=float32_matrices)
def test_fbin_and_fvecs_round_trip(data):
    with tempfile.TemporaryDirectory() as folder:
        for suffix in (".fbin", ".fvecs"):
            path = Path(folder) / f"v{suffix}"
            write_vectors(path, data)
            out = read_vectors(path)
            assert out.shape == data.shape
            assert out.dtype == np.float32
            np.testing.assert_array_equal(
                np.ascontiguousarray(out).view(np.uint32), data.view(np.uint32)
            )
            del out
