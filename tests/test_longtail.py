"""Tests for annkit.longtail: tail metrics, weighted recall and frequency bands."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annkit.errors import InputError
from annkit.longtail import (
    LongtailError,
    band_names,
    frequency_bands,
    tail_metrics,
    weighted_recall,
)

# --------------------------------------------------------------------------- tail metrics


def test_tail_metrics_known_values():
    recall = np.array([1.0, 0.0, 0.8, 0.2, 0.6, 0.4])  # sorted: 0, .2, .4, .6, .8, 1
    metrics = tail_metrics(recall)
    assert metrics["queries"] == 6
    assert metrics["mean"] == pytest.approx(0.5)
    # linear interpolation at position p/100 * (n - 1) = p/100 * 5 on the sorted values
    assert metrics["p1"] == pytest.approx(0.01)
    assert metrics["p5"] == pytest.approx(0.05)
    assert metrics["p10"] == pytest.approx(0.10)
    assert metrics["share_below_0_5"] == pytest.approx(0.5)
    assert metrics["share_zero"] == pytest.approx(1 / 6)


def test_tail_metrics_share_below_is_strict():
    metrics = tail_metrics(np.array([0.5, 0.5, 0.49, 0.0]))
    assert metrics["share_below_0_5"] == pytest.approx(0.5)
    assert metrics["share_zero"] == pytest.approx(0.25)


@pytest.mark.parametrize("bad", [np.array([]), np.array([0.5, np.nan]), np.ones((2, 2))])
def test_tail_metrics_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        tail_metrics(bad)


def test_errors_are_annkit_input_errors():
    with pytest.raises(InputError, match="per_query_recall is empty"):
        tail_metrics(np.array([]))
    assert issubclass(LongtailError, ValueError)


def test_weighted_recall():
    recall = np.array([1.0, 0.0, 0.5])
    assert weighted_recall(recall, np.array([3.0, 1.0, 0.0])) == pytest.approx(0.75)
    assert weighted_recall(recall, np.ones(3)) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "weights", [np.array([1.0, -1.0, 1.0]), np.zeros(3), np.ones(2), np.array([1.0, np.inf, 1])]
)
def test_weighted_recall_rejects_bad_weights(weights):
    with pytest.raises(ValueError):
        weighted_recall(np.array([1.0, 0.0, 0.5]), weights)


# --------------------------------------------------------------------------- frequency bands


def test_frequency_bands_distinct_weights():
    rng = np.random.default_rng(0)
    weights = rng.permutation(np.arange(1.0, 11.0))  # 10 distinct weights
    labels = frequency_bands(weights)
    assert (labels == "head").sum() == 2
    assert (labels == "torso").sum() == 4
    assert (labels == "tail").sum() == 4
    assert set(weights[labels == "head"]) == {10.0, 9.0}
    assert set(weights[labels == "torso"]) == {8.0, 7.0, 6.0, 5.0}
    assert set(weights[labels == "tail"]) == {4.0, 3.0, 2.0, 1.0}


def test_frequency_bands_ties_by_index():
    labels = frequency_bands(np.ones(10))
    assert labels.tolist() == ["head"] * 2 + ["torso"] * 4 + ["tail"] * 4
    # a tie straddling the head/torso cut: the lower index wins the head slot
    labels = frequency_bands(np.array([1.0, 5.0, 3.0, 3.0, 0.0]))
    # positions: 1 (5.0), 2 (3.0), 3 (3.0), 0 (1.0), 4 (0.0); cuts round(1.0)=1, round(3.0)=3
    assert labels.tolist() == ["tail", "head", "torso", "torso", "tail"]


def test_frequency_bands_custom_cuts_and_names():
    labels = frequency_bands(np.arange(10.0)[::-1], cuts=(0.1, 0.5, 0.9))
    assert labels.tolist() == ["band1"] + ["band2"] * 4 + ["band3"] * 4 + ["band4"]
    assert band_names((0.2, 0.6)) == ("head", "torso", "tail")
    assert band_names((0.5,)) == ("band1", "band2")


@pytest.mark.parametrize("cuts", [(0.6, 0.2), (0.2, 0.2), (0.0, 0.5), (0.5, 1.0), ()])
def test_frequency_bands_rejects_bad_cuts(cuts):
    with pytest.raises(ValueError):
        frequency_bands(np.ones(5), cuts=cuts)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=60))
def test_frequency_bands_sizes_and_monotone(counts):
    weights = np.array(counts, dtype=float)
    labels = frequency_bands(weights)
    n = weights.size
    head = int(math.floor(0.2 * n + 0.5 + 1e-9))
    torso = int(math.floor(0.6 * n + 0.5 + 1e-9)) - head
    assert (labels == "head").sum() == head
    assert (labels == "torso").sum() == torso
    rank = {"head": 0, "torso": 1, "tail": 2}
    band = np.array([rank[label] for label in labels])
    # a more frequent query never sits in a later band
    for i in range(n):
        assert not np.any((weights > weights[i]) & (band > band[i]))
