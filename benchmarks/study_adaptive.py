"""Why per-query effort policies fall short of the oracle on words-100k: the studies behind
the README's "Why the main target is missed" (issue 12). Not part of annkit: it reads faiss
HNSW internals (the level-0 neighbour arrays) to try graph features and graph repair.

    python benchmarks/study_adaptive.py [--dataset ../shared/data/words-minilm-384-angular.hdf5]
                                        [--workdir /tmp/annkit-adaptive-cache]

faiss HNSW16 (efConstruction 200, one thread; the index of bench_adaptive.py, from the same
cache). Every query is searched at every efSearch of the grid (exact distance counts).
Figures, all on 5,000 queries, 5 seeded folds, out-of-fold LightGBM predictions:

1. features after a first stage at efSearch 10: Spearman with each query's least efSearch
   reaching recall 1.0, and the AUC for "the first stage already has recall 1.0";
2. the effort model (as annkit's learned policy, first stage at efSearch 10) with the
   shipped features and with nine graph features added (HNSW in-degree of the found
   neighbours; their exact base-kNN distance, reverse-kNN count, mutual neighbourhood,
   which need an O(n^2) base kNN graph): the least work reaching the uniform recall and p5
   at efSearch 80, as a ratio of its work (the multiplier fitted on the same queries, so
   optimistic);
3. risk models: one search again after a first stage, and a cascade of two;
4. graph repair: NGFix-like edges for 2,500 training queries, scored on the other 2,500;
   and every node's free level-0 slots filled with its exact nearest neighbours.
Writes results/adaptive_study.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import faiss
import lightgbm
import numpy as np
from bench_adaptive import CACHE, FAISS, K
from common import dataset_file, machine, parser, write_figures

from annkit.adaptive.features import first_stage_features
from annkit.adaptive.search import refine_grid
from annkit.adaptive.table import least_effort_index, measure_table
from annkit.bundle import fingerprint_vectors
from annkit.cache import cached_true_distances, index_dir, index_key, obtain_index
from annkit.sources import open_dataset

PARAMS = FAISS[1]  # the faiss HNSW16 index of bench_adaptive.py
BOOST = {
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "verbose": -1,
    "num_threads": 1,
    "seed": 0,
    "deterministic": True,
    "force_row_wise": True,
}


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    def ranks(v: np.ndarray) -> np.ndarray:
        order = np.argsort(v, kind="stable")
        out = np.empty(v.size)
        out[order] = np.arange(v.size)
        return out

    return float(np.corrcoef(ranks(np.nan_to_num(x)), ranks(y))[0, 1])


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a positive scores above a negative (ties count half)."""
    score = np.nan_to_num(score)
    pos, neg = score[positive], score[~positive]
    order = np.argsort(np.concatenate([pos, neg]), kind="stable")
    ranks = np.empty(order.size)
    ranks[order] = np.arange(1, order.size + 1)
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def out_of_fold(
    features: np.ndarray, labels: np.ndarray, fold: np.ndarray, objective: str
) -> np.ndarray:
    predicted = np.zeros(labels.size)
    for part in np.unique(fold):
        train = fold != part
        booster = lightgbm.train(
            {**BOOST, "objective": objective}, lightgbm.Dataset(features[train], labels[train]), 150
        )
        predicted[~train] = booster.predict(features[~train])
    return predicted


def level0(index: faiss.Index, n_base: int) -> np.ndarray:
    """(n, 2M) level-0 neighbour ids of a faiss HNSW index (-1 = free slot)."""
    hnsw = faiss.downcast_index(index).hnsw
    neighbours = faiss.vector_to_array(hnsw.neighbors).astype(np.int64)
    offsets = faiss.vector_to_array(hnsw.offsets).astype(np.int64)
    cum = faiss.vector_to_array(hnsw.cum_nneighbor_per_level).astype(np.int64)
    return neighbours[offsets[:n_base, None] + np.arange(cum[0], cum[1])[None, :]]


def set_level0(index: faiss.Index, table: np.ndarray) -> None:
    hnsw = faiss.downcast_index(index).hnsw
    neighbours = faiss.vector_to_array(hnsw.neighbors).astype(np.int64)
    offsets = faiss.vector_to_array(hnsw.offsets).astype(np.int64)
    cum = faiss.vector_to_array(hnsw.cum_nneighbor_per_level).astype(np.int64)
    neighbours[offsets[: table.shape[0], None] + np.arange(cum[0], cum[1])[None, :]] = table
    faiss.copy_array_to_vector(neighbours.astype(np.int32), hnsw.neighbors)


def scored(
    index: faiss.Index,
    queries: np.ndarray,
    base: np.ndarray,
    kth: np.ndarray,
    efforts: tuple[int, ...],
) -> list[dict]:
    """recall@10 (tolerant rule), p5 and faiss' distance computations per query."""
    out = []
    for effort in efforts:
        faiss.cvar.hnsw_stats.reset()
        _, ids = index.search(queries, K, params=faiss.SearchParametersHNSW(efSearch=effort))
        work = faiss.cvar.hnsw_stats.ndis / len(queries)
        distances = 1.0 - np.einsum("qkd,qd->qk", base[ids], queries)
        recall = (distances <= kth[:, None] + 1e-3).sum(axis=1) / K
        out.append(
            {
                "efSearch": effort,
                "recall": float(recall.mean()),
                "p5_recall": float(np.percentile(recall, 5)),
                "work": float(work),
            }
        )
    return out


def main() -> None:
    arguments = parser(__doc__, dataset=True, workdir=CACHE, output="adaptive_study.json")
    args = arguments.parse_args()
    faiss.omp_set_num_threads(1)
    started = time.perf_counter()
    dataset = open_dataset(str(dataset_file(args.dataset)))
    truth, _, _ = cached_true_distances(args.workdir, dataset, K)
    fingerprint = fingerprint_vectors(dataset.base)
    bundle, _ = obtain_index(
        index_dir(args.workdir, index_key(fingerprint, "faiss", PARAMS, dataset.metric)),
        "faiss",
        PARAMS,
        dataset,
        fingerprint=fingerprint,
        threads=1,
    )
    engine = bundle.engine
    grid = refine_grid(engine.effort_grid(K, dataset.n_base), steps=4)
    table = measure_table(
        engine,
        dataset.base,
        dataset.queries,
        dataset.metric,
        truth,
        K,
        grid,
        [],
        np.zeros((0, dataset.dim), dtype=np.float32),
    )
    recall, cost = table.recall, table.cost()
    n_queries = recall.shape[0]
    rows = np.arange(n_queries)
    fold = np.random.default_rng(0).permutation(n_queries) % 5
    uniform = grid.index(80)
    goal, goal_p5 = recall[:, uniform].mean(), np.percentile(recall[:, uniform], 5)
    base_work = cost[:, uniform].mean()
    queries = np.ascontiguousarray(dataset.queries, dtype=np.float32)
    results: dict = {
        "dataset": dataset.name,
        "grid": grid,
        "machine": machine(),
        "uniform": {"efSearch": 80, "recall": goal, "p5_recall": goal_p5, "work": base_work},
    }

    # 1. features after a first stage at efSearch 10
    engine.set_query_params(efSearch=10)
    first = engine.search(queries, K)
    shipped = first_stage_features(first)
    least = least_effort_index(recall, 1.0)
    done = recall[:, 0] >= 1.0 - 1e-9
    names = ["d1", "dk", "dk_minus_d1", "dk_over_d1", "mid_position", "spread", "lid_first"]
    unit = dataset.base / np.linalg.norm(dataset.base, axis=1, keepdims=True)
    unit = np.ascontiguousarray(unit, dtype=np.float32)
    flat = faiss.IndexFlatIP(dataset.dim)
    flat.add(unit)
    similarity, knn = flat.search(unit, 11)
    kdist, knn = 1.0 - similarity[:, 10], knn[:, 1:]
    graph = level0(faiss.read_index(str(Path(bundle.path) / "index.faiss")), dataset.n_base)
    indegree = np.bincount(graph[graph >= 0].ravel(), minlength=dataset.n_base)
    reverse = np.bincount(knn.ravel(), minlength=dataset.n_base)
    ids = first.ids
    mutual = np.array([len(set(ids[q]) & set(knn[ids[q]].ravel())) / K for q in rows])
    linked = np.array(
        [sum(len(set(ids[q]) & set(graph[a])) for a in ids[q]) / (K * (K - 1)) for q in rows]
    )
    graph_features = {
        "dk_over_found_kdist": shipped[:, 1] / kdist[ids].mean(axis=1),
        "d1_over_first_kdist": shipped[:, 0] / kdist[ids[:, 0]],
        "found_kdist": kdist[ids].mean(axis=1),
        "found_min_rknn": reverse[ids].min(axis=1),
        "found_mean_rknn": reverse[ids].mean(axis=1),
        "found_mutual_knn": mutual,
        "found_linked_in_hnsw": linked,
        "found_min_indegree": indegree[ids].min(axis=1),
        "found_mean_indegree": indegree[ids].mean(axis=1),
    }
    columns = {**dict(zip(names, shipped.T, strict=True)), **graph_features}
    results["features"] = {
        name: {
            "spearman_least_effort": spearman(values, least),
            "auc_first_stage_done": auc(values, done),
        }
        for name, values in columns.items()
    }

    # 2. the effort model, shipped vs shipped + graph features
    labels = np.log2(np.asarray(grid + [2 * grid[-1]], dtype=np.float64)[least])
    results["effort_model"] = {}
    for label, features in (
        ("shipped", shipped),
        ("shipped + graph", np.column_stack([shipped, *graph_features.values()])),
    ):
        predicted = out_of_fold(features, labels, fold, "regression")
        best = None
        for multiplier in 2.0 ** np.arange(-4, 6, 1 / 16):
            index = np.minimum(
                np.searchsorted(grid, np.exp2(predicted) * multiplier - 1e-9), len(grid) - 1
            )
            got = recall[rows, index]
            work = cost[:, 0] + np.where(index > 0, cost[rows, index], 0.0)
            if (
                got.mean() >= goal - 1e-9
                and np.percentile(got, 5) >= goal_p5 - 1e-9
                and (best is None or work.mean() < best)
            ):
                best = float(work.mean())
        results["effort_model"][label] = {
            "spearman": spearman(predicted, labels),
            "work_ratio": None if best is None else best / base_work,
        }

    # 3. risk models: one search again, or a cascade of two
    risk = {}
    for stage in (grid.index(v) for v in (10, 14, 20, 28, 40, 57)):
        engine.set_query_params(efSearch=grid[stage])
        found = first_stage_features(engine.search(queries, K))
        for floor in (0.9, 1.0):
            missed = recall[:, stage] < floor - 1e-9
            score = out_of_fold(found, missed.astype(float), fold, "binary")
            risk[(stage, floor)] = (score, auc(score, missed))
    quantiles = np.linspace(0, 1, 51)

    def meets(got: np.ndarray) -> bool:
        return bool(got.mean() >= goal - 1e-9 and np.percentile(got, 5) >= goal_p5 - 1e-9)

    single = None
    for (stage, floor), (score, _) in risk.items():
        for again in range(stage + 1, len(grid)):
            for threshold in np.quantile(score, quantiles):
                flagged = score > threshold
                got = np.where(flagged, recall[:, again], recall[:, stage])
                work = float((cost[:, stage] + flagged * cost[:, again]).mean())
                if meets(got) and (single is None or work < single["work"]):
                    single = {
                        "work": work,
                        "first": grid[stage],
                        "floor": floor,
                        "again": grid[again],
                        "share_again": float(flagged.mean()),
                    }
    cascade = None
    for (first_stage, floor_a), (score_a, _) in risk.items():
        if grid[first_stage] > 20:
            continue
        for (second_stage, floor_b), (score_b, _) in risk.items():
            if second_stage <= first_stage or grid[second_stage] < 28:
                continue
            for last in range(second_stage + 1, len(grid), 2):
                for threshold_a in np.quantile(score_a, quantiles[::2]):
                    once = score_a > threshold_a
                    for threshold_b in np.quantile(score_b, quantiles[::2]):
                        twice = once & (score_b > threshold_b)
                        got = np.where(
                            twice,
                            recall[:, last],
                            np.where(once, recall[:, second_stage], recall[:, first_stage]),
                        )
                        work = float(
                            (
                                cost[:, first_stage]
                                + once * cost[:, second_stage]
                                + twice * cost[:, last]
                            ).mean()
                        )
                        if meets(got) and (cascade is None or work < cascade["work"]):
                            cascade = {
                                "work": work,
                                "floors": [floor_a, floor_b],
                                "stages": [grid[first_stage], grid[second_stage], grid[last]],
                            }
    for entry in (single, cascade):
        if entry is not None:
            entry["work_ratio"] = entry["work"] / base_work
    results["risk"] = {
        "auc": {
            f"efSearch {grid[stage]}, floor {floor}": value
            for (stage, floor), (_, value) in risk.items()
        },
        "one_search_again": single,
        "cascade_of_two": cascade,
        "note": "thresholds fitted on the scored queries: optimistic",
    }

    # 4. graph repair, scored on held-out queries
    path = str(Path(bundle.path) / "index.faiss")
    unit_queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    kth = truth[:, K - 1]
    half = np.random.default_rng(0).permutation(n_queries) % 2
    train, test = np.flatnonzero(half == 0), np.flatnonzero(half == 1)
    efforts = (16, 24, 40, 57, 80)
    original = faiss.read_index(path)
    repair: dict = {"original": scored(original, unit_queries[test], unit, kth[test], efforts)}
    truth_ids = dataset.neighbors[:, :K].astype(np.int64)
    _, found_ids = original.search(
        unit_queries[train], K, params=faiss.SearchParametersHNSW(efSearch=24)
    )
    edited, added = graph.copy(), 0
    for row, query in enumerate(train):
        found = set(found_ids[row].tolist())
        anchors = [t for t in truth_ids[query] if t in found] or [int(found_ids[row, 0])]
        for missed in (t for t in truth_ids[query] if t not in found):
            for a, b in ((anchors[0], missed), (missed, anchors[0])):
                free = np.flatnonzero(edited[a] < 0)
                if b not in edited[a] and free.size:
                    edited[a, free[0]] = b
                    added += 1
    repaired = faiss.read_index(path)
    set_level0(repaired, edited)
    repair["query_aware"] = {
        "edges_added": added,
        "training_queries": int(train.size),
        "points": scored(repaired, unit_queries[test], unit, kth[test], efforts),
    }
    filled, added = graph.copy(), 0
    for node in range(dataset.n_base):
        free = list(np.flatnonzero(filled[node] < 0))
        present = set(filled[node][filled[node] >= 0].tolist())
        for other in knn[node]:
            if not free:
                break
            if other != node and other not in present:
                filled[node, free.pop(0)] = other
                present.add(int(other))
                added += 1
    knn_filled = faiss.read_index(path)
    set_level0(knn_filled, filled)
    repair["knn_fill"] = {
        "edges_added": added,
        "points": scored(knn_filled, unit_queries[test], unit, kth[test], efforts),
    }
    results["graph_repair"] = repair
    results["seconds"] = time.perf_counter() - started
    write_figures(args.output, results, indent=1)
    print(
        json.dumps({key: results[key] for key in ("effort_model", "risk")}, indent=1, default=str)
    )
    for name in ("original", "query_aware", "knn_fill"):
        points = repair[name] if name == "original" else repair[name]["points"]
        print(name, [(p["efSearch"], round(p["recall"], 4), round(p["work"])) for p in points])
    print(f"wrote {args.output} ({results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
