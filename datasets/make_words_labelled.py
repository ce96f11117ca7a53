"""Derive labelled word datasets (filtered search) from the shared 100k words dataset.

Run from the repository root (needs the ``labels`` extra: ``pip install -e .[labels]``,
i.e. wordfreq 3.1.1; everything runs offline once it is installed):

    python datasets/make_words_labelled.py                       # datasets/words-10k-labelled.hdf5
    python datasets/make_words_labelled.py --mode 100k -o words-100k-labelled.hdf5
    python datasets/make_words_labelled.py --mode 1m -o words-1m-labelled.hdf5 [--copies 10]

Labels come from the words themselves (``train_text`` / ``test_text``):

1. **languages**: a word carries the label of every wordfreq 3.1.1 language
   (``wordfreq.available_languages("best")``, 42 of them) in whose ``top_n_list(lang,
   50000)`` it appears. All words come from the English list, so ``en`` is the most common
   label; languages that share words with English (Dutch, French...) follow, and languages
   with other scripts are rare: a long tail;
2. **scripts**: a word whose first letter is not Latin also carries ``script:<NAME>``, the
   Unicode script name of that letter (``unicodedata.name``'s first word, e.g. GREEK).

The label vocabulary is the same for every mode: the 42 languages (sorted), then the
scripts found among all the source file's words (sorted).

A query's filter (``test_labels``) is 1 or 2 of the query word's own labels, drawn with
numpy ``default_rng(20)`` over all 5,000 source queries in source order (so a query word
has the same filter in every mode): a word with two or more labels gets two with
probability 1/2, else one, drawn without replacement. A query word with no labels stays
unfiltered (an empty row). The base vectors keep all their labels (``train_labels``).

Modes:
- ``10k`` (bundled, ``datasets/words-10k-labelled.hdf5``): exactly the base and queries of
  ``words-10k`` (its ``train_source_row`` / ``test_source_row``, see make_words_10k.py);
- ``100k`` (not committed): the source's 100,000 base vectors and 5,000 queries;
- ``1m`` (not committed, for scale figures): every source base vector ``--copies`` times
  (default 10, so 1,000,000), copy 0 the original and the others perturbed by seeded
  Gaussian noise (``default_rng(21)``) of norm ``--noise`` (default 0.1) and re-normalised;
  copy ``j`` of source row ``i`` is row ``i * copies + j`` and carries row ``i``'s labels
  and text.

Ground truth: annkit's exact filtered ground truth (annkit.filtered), k = 100, angular
(1 - cosine similarity) recomputed in float64, ties to the lower id; a query with fewer
than 100 passing base vectors has its row padded with id -1 and distance +inf.
"""

from __future__ import annotations

import argparse
import os
import sys
import unicodedata
from pathlib import Path

import h5py
import numpy as np

from annkit.filtered import compute_filtered_ground_truth
from annkit.io.hdf5 import read_vector_dataset, write_label_group
from annkit.labels import Labels, summarize_labels

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent.parent / "shared" / "data" / "words-minilm-384-angular.hdf5"
TOP_N = 50_000
DEPTH = 100
FILTER_SEED = 20
NOISE_SEED = 21


def _texts(values: np.ndarray) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def word_script(word: str) -> str | None:
    """The Unicode script name of the word's first letter (GREEK, CYRILLIC...), None for
    Latin or a word without letters."""
    for char in word:
        if char.isalpha():
            script = unicodedata.name(char, "UNKNOWN").split()[0]
            return None if script == "LATIN" else script
    return None


def label_vocabulary(all_words: list[str]) -> tuple[list[str], dict[str, set[str]]]:
    """(label names, language -> its top-N word set): the languages then the scripts."""
    import wordfreq

    languages = sorted(wordfreq.available_languages("best"))
    tops = {lang: set(wordfreq.top_n_list(lang, TOP_N)) for lang in languages}
    scripts = sorted({s for s in map(word_script, all_words) if s is not None})
    return languages + [f"script:{s}" for s in scripts], tops


def word_labels(words: list[str], names: list[str], tops: dict[str, set[str]]) -> list[list[int]]:
    """Each word's label ids: the languages whose top-N list holds it, then its script."""
    ids = {name: i for i, name in enumerate(names)}
    rows = []
    for word in words:
        row = [ids[lang] for lang in tops if word in tops[lang]]
        script = word_script(word)
        if script is not None:
            row.append(ids[f"script:{script}"])
        rows.append(sorted(row))
    return rows


def query_filters(rows: list[list[int]], seed: int = FILTER_SEED) -> list[list[int]]:
    """Each query's filter: 1 or 2 of its own labels (two with probability 1/2 when it has
    two or more), drawn in order with ``default_rng(seed)``; [] for a word without labels."""
    rng = np.random.default_rng(seed)
    filters = []
    for row in rows:
        if not row:
            filters.append([])
            continue
        size = 2 if len(row) >= 2 and rng.random() < 0.5 else 1
        filters.append(sorted(int(v) for v in rng.choice(row, size=size, replace=False)))
    return filters


def perturbed_copies(
    base: np.ndarray, copies: int, noise: float, seed: int = NOISE_SEED, block: int = 2048
):
    """Blocks (start row, float32 rows) of ``copies`` rows per base row: the row itself,
    then copies moved by Gaussian noise of norm about ``noise`` and re-normalised; source
    rows are taken ``block`` at a time, so memory stays bounded."""
    rng = np.random.default_rng(seed)
    dim = base.shape[1]
    for start in range(0, len(base), block):
        out = np.repeat(np.asarray(base[start : start + block], dtype=np.float64), copies, 0)
        jitter = rng.standard_normal(out.shape) * (noise / np.sqrt(dim))
        jitter[::copies] = 0.0  # copy 0 is the original
        out += jitter
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        yield start * copies, out.astype(np.float32)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["10k", "100k", "1m"], default="10k")
    parser.add_argument("--source", default=str(SOURCE), help="the shared 100k words dataset")
    parser.add_argument("-o", "--output", default=None, help="file to write")
    parser.add_argument("--copies", type=int, default=10, help="1m mode: copies per vector")
    parser.add_argument("--noise", type=float, default=0.1, help="1m mode: perturbation norm")
    parser.add_argument(
        "--max-base", type=int, default=None, help="smoke tests: first N source base rows"
    )
    parser.add_argument(
        "--max-queries", type=int, default=None, help="smoke tests: first N queries"
    )
    parser.add_argument("--threads", type=int, default=None, help="threads for the truth")
    args = parser.parse_args(argv)
    if args.output is None:
        if args.mode != "10k":
            parser.error(f"--mode {args.mode} needs -o/--output (the file is not committed)")
        args.output = str(HERE / "words-10k-labelled.hdf5")

    with h5py.File(args.source, "r") as src:
        train_text = _texts(src["train_text"][:])
        test_text = _texts(src["test_text"][:])
        names, tops = label_vocabulary(train_text + test_text)
        if args.mode == "10k":
            with h5py.File(HERE / "words-10k.hdf5", "r") as small:
                base_rows = small["train_source_row"][:].astype(np.int64)
                query_rows = small["test_source_row"][:].astype(np.int64)
        else:
            base_rows = np.arange(len(train_text), dtype=np.int64)
            query_rows = np.arange(len(test_text), dtype=np.int64)
        if args.max_base is not None:
            base_rows = base_rows[: args.max_base]
        if args.max_queries is not None:
            query_rows = query_rows[: args.max_queries]
        base = src["train"][:][base_rows]
        queries = src["test"][:][query_rows]
        fields = {
            "train_rank": src["train_rank"][:][base_rows],
            "test_rank": src["test_rank"][:][query_rows],
            "test_weights": src["test_weights"][:][query_rows],
        }
    base_words = [train_text[i] for i in base_rows]
    query_words = [test_text[i] for i in query_rows]
    filters = query_filters(word_labels(test_text, names, tops))
    base_labels = Labels.from_rows(word_labels(base_words, names, tops), len(names), names)
    query_labels = Labels.from_rows([filters[i] for i in query_rows], len(names), names)
    copies = args.copies if args.mode == "1m" else 1
    if copies > 1:
        base_labels = base_labels.repeat(copies)
        base_words = [word for word in base_words for _ in range(copies)]
        fields["train_rank"] = np.repeat(fields["train_rank"], copies)
        base_rows = np.repeat(base_rows, copies)

    tmp = args.output + ".tmp"
    with h5py.File(tmp, "w") as dst:
        train = dst.create_dataset("train", shape=(len(base) * copies, base.shape[1]), dtype="<f4")
        if copies > 1:
            for start, rows in perturbed_copies(base, copies, args.noise):
                train[start : start + len(rows)] = rows
        else:
            train[...] = np.asarray(base, dtype=np.float32)
        dst.create_dataset("test", data=np.ascontiguousarray(queries, dtype=np.float32))
        text = h5py.string_dtype("utf-8")
        dst.create_dataset("train_text", data=base_words, dtype=text)
        dst.create_dataset("test_text", data=query_words, dtype=text)
        for name, values in fields.items():
            dst.create_dataset(name, data=values)
        dst.create_dataset("train_source_row", data=base_rows.astype(np.int32))
        dst.create_dataset("test_source_row", data=query_rows.astype(np.int32))
        write_label_group(dst, "train_labels", base_labels)
        write_label_group(dst, "test_labels", query_labels)
        dst.attrs["distance"] = "angular"
        dst.attrs["point_type"] = "float"
        dst.attrs["derivation"] = (
            f"datasets/make_words_labelled.py --mode {args.mode} from "
            "words-minilm-384-angular.hdf5: labels = wordfreq 3.1.1 languages whose top "
            f"{TOP_N:,} list holds the word + non-Latin Unicode script; query filter = 1 or "
            f"2 of the query word's labels (AND), default_rng({FILTER_SEED}); "
            + (f"{copies} perturbed copies per vector; " if copies > 1 else "")
            + f"exact filtered float64 angular ground truth, depth {DEPTH}, ties to lower "
            "id, padded with -1 / +inf"
        )
    with h5py.File(tmp, "r") as handle:  # the base memory-mapped, as annkit reads it
        mapped = read_vector_dataset(tmp, handle, "train", "base vectors")
        truth = compute_filtered_ground_truth(
            mapped,
            np.asarray(queries, dtype=np.float32),
            DEPTH,
            "angular",
            base_labels,
            query_labels,
            threads=args.threads,
        )
    with h5py.File(tmp, "a") as dst:
        dst.create_dataset("neighbors", data=truth.ids.astype(np.int32))
        dst.create_dataset("distances", data=truth.distances.astype(np.float32))
    os.replace(tmp, args.output)

    summary = summarize_labels(base_labels, query_labels, top=8).to_dict()
    print(
        f"wrote {args.output}: {base_labels.n_rows:,} base, {len(queries):,} queries",
        file=sys.stderr,
    )
    print(summary, file=sys.stderr)
    print(f"rows with fewer than {DEPTH} passing: {int(np.sum(truth.ids[:, -1] < 0))}")


if __name__ == "__main__":
    main()
