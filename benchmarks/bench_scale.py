"""How annkit's cost grows with the base, and what concurrency and Ray buy (issue 13).

    flock /tmp/annkit-bench.lock python benchmarks/bench_scale.py PART [--sizes ...]

Parts (each updates its own key of results/scale.json, written atomically):

- ``scale``: for base sizes from 10k to 1M, each in fresh child processes: exact ground-truth
  time and the child's peak memory (ru_maxrss; the base itself included), an hnsw build and
  a small bench (batch QPS and recall@10 at a few ef, one search thread), then the fitted
  growth (slope of log(value) against log(n)). Up to 100k the base is the real words-100k
  vectors (MiniLM, 384-d, angular); beyond, those 100k followed by seeded Gaussian
  perturbations of them (sigma 0.02 per coordinate, seed 13), renormalised.
- ``threads``: ``--search-threads 2`` against 1 (batch) and 2 clients against 1 (single) on
  the same hnsw index of words-100k, alternating, best of each.
- ``ray``: exact ground truth on a local 2-CPU Ray instance against the local run on
  words-100k (5,000 queries, k=100), wall time and identical output.
- ``mmap``: ground truth of a memory-mapped 1M x 384 .fbin base (1.43 GiB) in a child with
  ANNKIT_MEMORY_LIMIT of 1 GiB: does it finish, and with what peak memory?
- ``gil``: does each engine's search release the GIL? A Python loop's progress while
  another thread runs one long native search call, against its progress alone (about 1 when
  released, about 0 when held; lower on a busy machine).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from common import RESULTS, WORDS_100K, dataset_file, machine, parser, utc_now, write_figures

#: words-100k, or the file ANNKIT_WORDS100K names (check it with words_file())
WORDS = Path(os.environ.get("ANNKIT_WORDS100K", WORDS_100K))
OUTPUT = RESULTS / "scale.json"
WORK = Path(os.environ.get("ANNKIT_SCALE_DIR", "/tmp/annkit-scale"))
SIZES = (10_000, 30_000, 100_000, 300_000, 1_000_000)
SIGMA, SEED = 0.02, 13
N_QUERIES, K = 1000, 10
HNSW_BUILD = {"M": 8, "ef_construction": 32}  # cheap enough for 1M on 2 cores
EFS = (16, 32, 64)


# ------------------------------------------------------------------------------ data


def words_file() -> Path:
    """WORDS, or an exit saying where it was looked for."""
    return dataset_file(WORDS, other="set ANNKIT_WORDS100K to use another file")


def words() -> tuple[np.ndarray, np.ndarray]:
    """(train (100000, 384), test (5000, 384)) float32 of words-100k."""
    import h5py

    with h5py.File(words_file(), "r") as handle:
        return np.asarray(handle["train"], dtype=np.float32), np.asarray(
            handle["test"], dtype=np.float32
        )


def big_base_path(n: int = max(SIZES)) -> Path:
    """An .fbin of ``n`` base vectors: the real 100k, then seeded perturbations of them
    (written once, in chunks)."""
    path = WORK / f"base-{n}.fbin"
    if path.is_file():
        return path
    WORK.mkdir(parents=True, exist_ok=True)
    train, _ = words()
    rng = np.random.default_rng(SEED)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        np.array([n, train.shape[1]], dtype="<i4").tofile(out)
        train.tofile(out)
        for start in range(len(train), n, 50_000):
            rows = min(50_000, n - start)
            source = train[np.arange(start, start + rows) % len(train)].astype(np.float64)
            source += rng.normal(0.0, SIGMA, source.shape)
            source /= np.linalg.norm(source, axis=1, keepdims=True)
            source.astype(np.float32).tofile(out)
    os.replace(tmp, path)
    return path


def queries_path() -> Path:
    path = WORK / "queries.fbin"
    if not path.is_file():
        _, test = words()
        WORK.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            np.array([N_QUERIES, test.shape[1]], dtype="<i4").tofile(out)
            test[:N_QUERIES].tofile(out)
    return path


def base_of_size(n: int) -> np.ndarray:
    """The first ``n`` rows of the big base, in memory."""
    from annkit.io.bin import read_bin
    from annkit.memory import release_pages

    mapped = read_bin(big_base_path())[:n]
    base = np.array(mapped)
    release_pages(mapped)  # only the in-memory copy counts towards the child's memory
    return base


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(*args: str, env: dict | None = None) -> dict:
    """Run this script's ``_child`` part in a fresh process; its last stdout line is JSON."""
    done = subprocess.run(
        [sys.executable, __file__, "_child", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {args} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ children


def child_groundtruth(n: int) -> dict:
    from annkit.groundtruth import compute_ground_truth
    from annkit.io.bin import read_bin

    base = base_of_size(n)
    queries = np.array(read_bin(queries_path()))
    before = peak_mb()
    started = time.perf_counter()
    truth = compute_ground_truth(base, queries, K, "angular", threads=2)
    seconds = time.perf_counter() - started
    np.save(WORK / f"gt-{n}.npy", truth.ids)
    return {
        "n": n,
        "seconds": seconds,
        "peak_rss_mb": peak_mb(),
        "rss_before_mb": before,
        "base_mb": base.nbytes / 2**20,
    }


def child_hnsw(n: int) -> dict:
    from annkit.bundle import build_index, fingerprint_vectors, load_bundle, save_bundle
    from annkit.evaluate import evaluate
    from annkit.io.bin import read_bin
    from annkit.types import Dataset

    base = base_of_size(n)
    queries = np.array(read_bin(queries_path()))
    dataset = Dataset(
        name=f"words-scaled-{n}",
        metric="angular",
        base=base,
        queries=queries,
        neighbors=np.load(WORK / f"gt-{n}.npy"),
    )
    before = peak_mb()
    engine, seconds = build_index("hnsw", base, "angular", dict(HNSW_BUILD), threads=2)
    shutil.rmtree(WORK / f"hnsw-{n}", ignore_errors=True)
    path = save_bundle(
        engine,
        WORK / f"hnsw-{n}",
        build_seconds=seconds,
        dataset_fingerprint=fingerprint_vectors(base),
    )
    build_peak = peak_mb()
    del engine
    bundle = load_bundle(path)
    points = []
    for ef in EFS:
        evaluation = evaluate(bundle, dataset, K, {"ef": ef}, runs=3, with_slices=False)
        points.append({"ef": ef, "recall": evaluation.recall, "qps": evaluation.qps})
    return {
        "n": n,
        "build_seconds": seconds,
        "build_peak_rss_mb": build_peak,
        "rss_before_build_mb": before,
        "index_bytes": bundle.index_bytes,
        "bench": points,
    }


def child_mmap(limit: int) -> dict:
    from annkit.groundtruth import write_ground_truth

    os.environ["ANNKIT_MEMORY_LIMIT"] = str(limit)
    output = WORK / "mmap-gt.hdf5"
    run = write_ground_truth(
        big_base_path(), queries_path(), K, output, metric="angular", ids_only=True, threads=2
    )
    return {
        "base_bytes": big_base_path().stat().st_size,
        "memory_limit_bytes": limit,
        "seconds": run.seconds,
        "peak_rss_mb": peak_mb(),
        "base": run.base,
        "queries": run.queries,
    }


# ------------------------------------------------------------------------------ parts


def slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log(y) against log(x)."""
    pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if x and y and x > 0 and y > 0]
    if len(pairs) < 2:
        return None
    logx, logy = np.log([p[0] for p in pairs]), np.log([p[1] for p in pairs])
    return float(np.polyfit(logx, logy, 1)[0])


def part_scale(sizes: list[int], gt_only: bool = False) -> dict:
    """``gt_only``: measure ground truth again, keep the hnsw figures of results/scale.json."""
    rows = []
    earlier = {}
    if gt_only:
        earlier = {
            row["n"]: row["hnsw"] for row in json.loads(OUTPUT.read_text())["scale"]["sizes"]
        }
    for n in sizes:
        truth = child("gt", str(n))
        print(
            f"n={n:>9,}: ground truth {truth['seconds']:.2f}s, peak {truth['peak_rss_mb']:.0f} MiB",
            flush=True,
        )
        hnsw = earlier[n] if gt_only else child("hnsw", str(n))
        print(
            f"             hnsw build {hnsw['build_seconds']:.1f}s; "
            + ", ".join(
                f"ef={p['ef']}: recall {p['recall']:.3f} {p['qps']:,.0f} QPS" for p in hnsw["bench"]
            ),
            flush=True,
        )
        rows.append({"n": n, "groundtruth": truth, "hnsw": hnsw})
    ns = [row["n"] for row in rows]
    growth = {
        "groundtruth_seconds": slope(ns, [r["groundtruth"]["seconds"] for r in rows]),
        "groundtruth_peak_rss": slope(ns, [r["groundtruth"]["peak_rss_mb"] for r in rows]),
        "hnsw_build_seconds": slope(ns, [r["hnsw"]["build_seconds"] for r in rows]),
        "hnsw_index_bytes": slope(ns, [r["hnsw"]["index_bytes"] for r in rows]),
    }
    for position, ef in enumerate(EFS):
        growth[f"hnsw_qps_ef{ef}"] = slope(ns, [r["hnsw"]["bench"][position]["qps"] for r in rows])
    return {
        "sizes": rows,
        "growth_loglog_slope": growth,
        "data": (
            f"words-100k train vectors (MiniLM 384-d, angular) up to 100k; beyond, "
            f"those followed by seeded Gaussian perturbations of them (sigma {SIGMA} "
            f"per coordinate, seed {SEED}), renormalised; {N_QUERIES} words-100k test "
            f"queries, k={K}"
        ),
        "hnsw_build": {**HNSW_BUILD, "threads": 2},
        "groundtruth_threads": 2,
        "bench": f"batch search, one thread, fastest of up to 3 runs, ef in {list(EFS)}",
    }


def part_threads(rounds: int = 3) -> dict:
    from annkit.bundle import build_index, fingerprint_vectors, load_bundle, save_bundle
    from annkit.evaluate import evaluate
    from annkit.sources import open_dataset

    dataset = open_dataset(str(words_file()))
    path = WORK / "hnsw-words100k-M16"
    if not (path / "manifest.json").is_file():
        engine, seconds = build_index(
            "hnsw", dataset.base, "angular", {"M": 16, "ef_construction": 100}, threads=2
        )
        path = save_bundle(
            engine,
            path,
            build_seconds=seconds,
            dataset_fingerprint=fingerprint_vectors(dataset.base),
        )
    bundle = load_bundle(path)
    truth = None
    results: dict[str, list[dict]] = {
        "batch_threads_1": [],
        "batch_threads_2": [],
        "single_clients_1": [],
        "single_clients_2": [],
    }
    for _ in range(rounds):
        for key, kwargs in (
            ("batch_threads_1", {"search_threads": 1}),
            ("batch_threads_2", {"search_threads": 2}),
            ("single_clients_1", {"mode": "single", "clients": 1}),
            ("single_clients_2", {"mode": "single", "clients": 2}),
        ):
            evaluation = evaluate(
                bundle,
                dataset,
                10,
                {"ef": 64},
                runs=3,
                with_slices=False,
                true_distances=truth,
                **kwargs,
            )
            results[key].append(
                {
                    "qps": evaluation.qps,
                    "recall": evaluation.recall,
                    "latency_ms": evaluation.latency_ms,
                }
            )
    best = {key: max(runs, key=lambda r: r["qps"]) for key, runs in results.items()}
    return {
        "setting": "hnsw M=16 ef_construction=100 (2-thread build) | ef=64, words-100k, "
        "5,000 queries, k=10",
        "rounds": rounds,
        "runs": results,
        "best": best,
        "search_threads_2_over_1": best["batch_threads_2"]["qps"] / best["batch_threads_1"]["qps"],
        "clients_2_over_1": best["single_clients_2"]["qps"] / best["single_clients_1"]["qps"],
        "same_recall": len({round(r["recall"], 12) for runs in results.values() for r in runs})
        == 1,
        "target": ">= 1.7x with --search-threads 2 on 2 cores",
        "load_average_after": os.getloadavg(),
    }


def part_ray() -> dict:
    from annkit.distributed.ray_backend import ray_ground_truth, ray_session
    from annkit.groundtruth import compute_ground_truth
    from annkit.sources import open_dataset

    dataset = open_dataset(str(words_file()))
    base, queries = np.asarray(dataset.base), np.asarray(dataset.queries)
    k = 100
    local_seconds = []
    local = None
    started = time.perf_counter()
    with ray_session(None, num_cpus=2):
        startup = time.perf_counter() - started
        ray_seconds = []
        distributed = None
        for _ in range(2):  # alternate: local, Ray, local, Ray
            started = time.perf_counter()
            local = compute_ground_truth(base, queries, k, "angular", threads=2)
            local_seconds.append(time.perf_counter() - started)
            started = time.perf_counter()
            distributed = ray_ground_truth(base, queries, k, "angular")
            ray_seconds.append(time.perf_counter() - started)
    assert local is not None and distributed is not None
    identical = bool(
        np.array_equal(local.ids, distributed.ids)
        and local.distances.tobytes() == distributed.distances.tobytes()
    )
    return {
        "data": "words-100k: 100,000 x 384 base, 5,000 queries, k=100, angular",
        "local_seconds": local_seconds,
        "ray_seconds": ray_seconds,
        "ray_startup_seconds": startup,
        "ratio_ray_over_local_best": min(ray_seconds) / min(local_seconds),
        "identical_output": identical,
        "shards": 4,
        "ray_cpus": 2,
        "target": "Ray within 1.3x of local wall time, identical output",
    }


def part_mmap(limit: int = 1 << 30) -> dict:
    big_base_path()
    return child("mmap", str(limit))


def part_gil() -> dict:
    from annkit.engines.base import engine_names, get_engine
    from annkit.sources import open_dataset

    dataset = open_dataset("words-10k")
    queries = np.ascontiguousarray(dataset.queries, dtype=np.float32)

    def spin(seconds: float) -> int:
        count, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            count += 1
        return count

    out = {}
    for name in engine_names():
        cls = get_engine(name)
        build_params, query_params = cls.contract_settings
        engine = cls(dataset.metric, dataset.dim, **build_params)
        engine.build(dataset.base, threads=2)
        engine.set_query_params(**query_params)
        stop = threading.Event()

        def background(engine: object = engine, stop: threading.Event = stop) -> None:
            while not stop.is_set():
                engine.search(queries, 10)  # type: ignore[attr-defined] # long native calls

        alone = spin(1.0)
        thread = threading.Thread(target=background)
        thread.start()
        together = spin(1.0)
        stop.set()
        thread.join()
        out[name] = {"progress_while_searching": together / alone}
        print(f"{name}: {together / alone:.2f}", flush=True)
    return {
        "engines": out,
        "load_average_after": os.getloadavg(),
        "reading": "about 1 = the GIL is released during search (less on a busy "
        "machine), about 0 = held",
    }


def markdown_table() -> str:
    """The README's short table from results/scale.json."""
    data = json.loads(OUTPUT.read_text())
    lines = []
    scale = data.get("scale")
    if scale:
        lines += [
            "| base vectors | ground truth s | GT peak RSS | hnsw build s | recall@10 / QPS "
            f"(ef={EFS[-1]}) |",
            "|---:|---:|---:|---:|---:|",
        ]
        for row in scale["sizes"]:
            truth, hnsw = row["groundtruth"], row["hnsw"]
            last = hnsw["bench"][-1]
            lines.append(
                f"| {row['n']:,} | {truth['seconds']:.1f} | "
                f"{truth['peak_rss_mb']:,.0f} MiB | {hnsw['build_seconds']:.1f} | "
                f"{last['recall']:.3f} / {last['qps']:,.0f} |"
            )
        growth = scale["growth_loglog_slope"]
        lines.append(
            "| growth (log-log slope) | "
            + " | ".join(
                f"{growth[key]:.2f}" if growth.get(key) is not None else "-"
                for key in (
                    "groundtruth_seconds",
                    "groundtruth_peak_rss",
                    "hnsw_build_seconds",
                    f"hnsw_qps_ef{EFS[-1]}",
                )
            )
            + " |"
        )
    return "\n".join(lines)


def update(key: str, value: dict) -> None:
    """Replace one part's figures in results/scale.json, the machine's facts with today's."""
    current = json.loads(OUTPUT.read_text()) if OUTPUT.is_file() else {}
    current[key] = {**value, "measured_at": utc_now()}
    current["machine"] = machine()
    write_figures(OUTPUT, current)


def main() -> None:
    arguments = parser(__doc__)
    arguments.add_argument(
        "part", choices=["scale", "threads", "ray", "mmap", "gil", "table", "_child"]
    )
    arguments.add_argument("args", nargs="*")
    arguments.add_argument("--sizes", default=",".join(str(n) for n in SIZES))
    arguments.add_argument(
        "--gt-only",
        action="store_true",
        help="scale: redo ground truth only, keep the stored hnsw figures",
    )
    options = arguments.parse_args()
    if options.part == "_child":
        kind, value = options.args
        function = {"gt": child_groundtruth, "hnsw": child_hnsw, "mmap": child_mmap}[kind]
        print(json.dumps(function(int(value)), default=float))
        return
    if options.part == "table":
        print(markdown_table())
        return
    started = time.perf_counter()
    if options.part == "scale":
        result = part_scale([int(n) for n in options.sizes.split(",")], options.gt_only)
    else:
        result = {"threads": part_threads, "ray": part_ray, "mmap": part_mmap, "gil": part_gil}[
            options.part
        ]()
    result["benchmark_seconds"] = time.perf_counter() - started
    update(options.part, result)
    print(json.dumps(result, indent=2, default=float)[:3000])


if __name__ == "__main__":
    main()
