"""Per-query profiles (frequency band, hardness) and recall summaries over their slices.

Slice names: the frequency bands (``head``, ``torso``, ``tail`` by default; only when query
weights exist), and for each hardness measure M in lid, rc, expansion, ood: ``M-q1`` (easiest
quartile) .. ``M-q4`` (hardest) and ``hard-M`` (the hardest 10%); for filtered queries the
selectivity bands (share passing: ``sel<0.1%``, ``sel0.1-1%``, ``sel1-10%``, ``sel>=10%``,
``unfiltered``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from annkit.filtering import SELECTIVITY_BAND_NAMES, Workload
from annkit.hardness import HARDER_IS_HIGHER, hardest_mask, hardness_measures, quartile_slices
from annkit.longtail import DEFAULT_CUTS, frequency_bands, tail_metrics, weighted_recall
from annkit.types import Dataset, QueryProfile, SliceRecall, TailSummary, WorkSummary

HARDEST_SHARE = 0.1


def build_profile(
    dataset: Dataset,
    truth_distances: np.ndarray,
    k: int,
    *,
    cuts: Sequence[float] = DEFAULT_CUTS,
    sample_size: int = 1000,
    seed: int = 0,
) -> QueryProfile:
    """Profile every query of ``dataset`` from its exact neighbour distances.

    truth_distances: (nq, depth >= k) ascending, in the metric's convention. LID uses the
    whole depth; RC and expansion use d_k (expansion needs depth >= 2k).
    """
    masks: dict[str, np.ndarray] = {}
    bands = None
    if dataset.weights is not None:
        bands = frequency_bands(dataset.weights, cuts)
        for name in dict.fromkeys(bands.tolist()):
            masks[name] = bands == name
        masks = {name: masks[name] for name in _band_order(masks)}
    if dataset.query_labels is not None and dataset.base_labels is not None:
        bands_of = Workload.of(dataset.base_labels, dataset.query_labels).bands()
        for band in SELECTIVITY_BAND_NAMES:
            mask = bands_of == band
            if mask.any():
                masks[band] = mask
    hardness = hardness_measures(
        truth_distances,
        dataset.base,
        dataset.queries,
        dataset.metric,
        k,
        sample_size=sample_size,
        seed=seed,
    )
    for measure, values in hardness.items():
        harder_high = HARDER_IS_HIGHER[measure]
        quartiles = quartile_slices(values, harder_high)
        for quartile in ("q1", "q2", "q3", "q4"):
            masks[f"{measure}-{quartile}"] = quartiles == quartile
        masks[f"hard-{measure}"] = hardest_mask(values, harder_high, HARDEST_SHARE)
    return QueryProfile(masks=masks, hardness=hardness, bands=bands, weights=dataset.weights)


def _band_order(masks: dict[str, np.ndarray]) -> list[str]:
    known = ["head", "torso", "tail"]
    return [n for n in known if n in masks] + sorted(n for n in masks if n not in known)


def summarize(
    per_query_recall: np.ndarray,
    profile: QueryProfile | None,
    distance_computations: np.ndarray | None = None,
) -> tuple[TailSummary, dict[str, SliceRecall], float | None]:
    """(tail percentiles and shares, recall per non-empty slice, traffic-weighted recall or
    None without weights) of one run's per-query recall ``(nq,)``.

    ``distance_computations`` (nq,), the per-query counts of an engine that counts, adds the
    cost tail (:class:`WorkSummary`: mean, p50 / p95 / p99) to the tail summary and to every
    slice; without it (None) their ``work`` is None."""
    counts = None
    if distance_computations is not None:
        counts = np.asarray(distance_computations, dtype=np.float64).reshape(-1)
        assert counts.shape == per_query_recall.shape, "one count per query"
    tail = replace(
        TailSummary.from_dict(tail_metrics(per_query_recall)),
        work=None if counts is None else WorkSummary.of(counts),
    )
    slices: dict[str, SliceRecall] = {}
    if profile is None:
        return tail, slices, None
    for name, mask in profile.masks.items():
        values = per_query_recall[mask]
        if values.size == 0:
            continue
        slices[name] = SliceRecall(
            queries=int(values.size),
            recall=float(values.mean()),
            p5_recall=float(np.percentile(values, 5.0)),
            work=None if counts is None else WorkSummary.of(counts[mask]),
        )
    weighted = None
    if profile.weights is not None and float(np.sum(profile.weights)) > 0:
        weighted = weighted_recall(per_query_recall, profile.weights)
    return tail, slices, weighted


__all__ = ["HARDEST_SHARE", "QueryProfile", "build_profile", "summarize"]
