"""Turn a team's own documents and query log into a long-tail benchmark dataset.

Documents (one per line) become the base vectors, distinct queries of a log
(``query<TAB>count``) the query vectors with their counts as weights, both embedded by one
encoder (a sentence-transformers model from a local path, with the optional extra
``annkit[embed]``), and the exact ground truth is computed, so the file works with every
annkit command, its frequency bands included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annkit.errors import InputError
from annkit.groundtruth import compute_ground_truth
from annkit.io import write_dataset_hdf5
from annkit.types import normalize_metric

Encoder = Callable[[list[str]], np.ndarray]
Progress = Callable[[str], None]


def _lines(path: str | Path) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None


def read_documents(path: str | Path) -> list[str]:
    """The non-blank lines of ``path`` (UTF-8), stripped, in file order."""
    documents = [line.strip() for line in _lines(path) if line.strip()]
    if not documents:
        raise InputError(f"{path}: no documents (one per line expected)")
    return documents


def read_query_log(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Distinct queries of a ``query<TAB>count`` log (UTF-8; blank lines skipped) and their
    counts (float64, > 0). A query seen on several lines gets the sum of its counts; the
    order is that of first appearance."""
    counts: dict[str, float] = {}
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        query, tab, count_text = line.rpartition("\t")
        query = query.strip()
        if not tab or not query:
            raise InputError(f"{path} line {number}: expected 'query<TAB>count'")
        try:
            count = float(count_text)
        except ValueError:
            raise InputError(
                f"{path} line {number}: count {count_text.strip()!r} is not a number"
            ) from None
        if not np.isfinite(count) or count <= 0:
            raise InputError(
                f"{path} line {number}: count must be a positive number, got {count_text.strip()}"
            )
        counts[query] = counts.get(query, 0.0) + count
    if not counts:
        raise InputError(f"{path}: no queries ('query<TAB>count' per line expected)")
    return list(counts), np.fromiter(counts.values(), dtype=np.float64, count=len(counts))


def sentence_transformer_encoder(model_path: str | Path, batch_size: int = 64) -> Encoder:
    """An encoder backed by the sentence-transformers model saved at ``model_path`` (a local
    folder: nothing is downloaded), on the CPU."""
    folder = Path(model_path)
    if not folder.is_dir():
        raise InputError(
            f"model {model_path}: not a folder (give the local path of a saved "
            "sentence-transformers model; nothing is downloaded)"
        )
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise InputError(
            "embedding text needs the optional extra: pip install "
            "'annkit[embed]' (sentence-transformers)"
        ) from None
    try:
        model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any loader failure is a bad model folder
        raise InputError(
            f"model {model_path}: cannot be loaded ({type(exc).__name__}: {exc})"
        ) from None

    def encode(texts: list[str]) -> np.ndarray:
        return np.asarray(
            model.encode(
                texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False
            ),
            dtype=np.float32,
        )

    return encode


def _embed(encode: Encoder, texts: list[str], what: str, batch: int) -> np.ndarray:
    parts = []
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        vectors = np.asarray(encode(chunk), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(chunk):
            raise InputError(f"the encoder returned shape {vectors.shape} for {len(chunk)} {what}")
        parts.append(vectors)
    matrix = np.concatenate(parts)
    if not np.isfinite(matrix).all():
        raise InputError(f"the encoder returned NaN or infinite values for some {what}")
    return matrix


@dataclass(frozen=True)
class TextDataset:
    """What ``dataset_from_text`` wrote."""

    path: Path
    documents: int
    queries: int
    dim: int
    k: int
    metric: str
    total_count: float


def dataset_from_text(
    documents: Sequence[str],
    queries: Sequence[str],
    counts: np.ndarray,
    encode: Encoder,
    output: str | Path,
    *,
    metric: str = "angular",
    k: int = 100,
    batch: int = 1024,
    threads: int | None = None,
    progress: Progress | None = None,
) -> TextDataset:
    """Embed ``documents`` (base) and ``queries`` with ``encode``, compute the exact top-``k``
    (capped at the number of documents) and write an ann-benchmarks HDF5 at ``output`` with
    ``test_weights`` = ``counts`` and the texts as ``train_text`` / ``test_text``."""
    metric = normalize_metric(metric)
    if len(queries) != len(counts):
        raise InputError(f"{len(queries)} queries but {len(counts)} counts")
    notify = progress or (lambda message: None)
    notify(f"embedding {len(documents):,} documents")
    base = _embed(encode, list(documents), "documents", batch)
    notify(f"embedding {len(queries):,} queries")
    query_vectors = _embed(encode, list(queries), "queries", batch)
    if base.shape[1] != query_vectors.shape[1]:
        raise InputError(
            f"documents embed to dimension {base.shape[1]} but queries to {query_vectors.shape[1]}"
        )
    if metric == "angular":
        for name, matrix in (("document", base), ("query", query_vectors)):
            zero = np.flatnonzero(~np.any(matrix != 0, axis=1))
            if zero.size:
                raise InputError(
                    f"{name} {zero[0]} embeds to the zero vector, which has no "
                    "angle (use --metric euclidean or drop it)"
                )
    depth = min(int(k), base.shape[0])
    notify(f"exact top-{depth} of {len(queries):,} queries")
    truth = compute_ground_truth(base, query_vectors, depth, metric, threads=threads)
    write_dataset_hdf5(
        output,
        base=base,
        queries=query_vectors,
        metric=metric,
        neighbors=truth.ids,
        distances=truth.distances,
        weights=counts,
        base_text=list(documents),
        query_text=list(queries),
    )
    return TextDataset(
        path=Path(output),
        documents=base.shape[0],
        queries=len(queries),
        dim=int(base.shape[1]),
        k=depth,
        metric=metric,
        total_count=float(np.sum(counts)),
    )
