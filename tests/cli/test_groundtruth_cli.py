"""``annkit groundtruth``: the written file keeps the dataset's texts and weights; its help
says what the threads do."""

from __future__ import annotations

from cli_runner import WIDE, run_cli


def test_groundtruth_keeps_texts_and_weights(tmp_path):
    import h5py
    import numpy as np

    from annkit.io import resolve_dataset_path

    out = tmp_path / "gt.hdf5"
    result = run_cli(
        "groundtruth", "words-10k", "-k", "10", "-o", str(out), "--json", "-q", env=WIDE
    )
    assert result.exit_code == 0, result.output
    with (
        h5py.File(resolve_dataset_path("words-10k"), "r") as source,
        h5py.File(out, "r") as written,
    ):
        for key in ("test_text", "train_text", "test_weights"):
            assert key in written, key
            assert np.array_equal(written[key][:], source[key][:]), key
        assert np.array_equal(written["neighbors"][:], source["neighbors"][:, :10])


def test_groundtruth_help_says_what_the_threads_do():
    result = run_cli("groundtruth", "--help", env=WIDE)
    assert "Threads for the exact search" in result.stdout
    assert "Threads for building" not in result.stdout
