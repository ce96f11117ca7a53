"""``annkit datasets from-text``: query-log parsing, the written dataset and its ground truth
(with a deterministic character n-gram encoder standing in for a model), and the CLI's errors
when the model or the optional extra is missing."""

from __future__ import annotations

import importlib.util
import os
import zlib

import numpy as np
import pytest
from cli_runner import run_cli

from annkit.errors import InputError
from annkit.fromtext import dataset_from_text, read_documents, read_query_log
from annkit.io import load_dataset
from annkit.io.table import read_query_text
from annkit.longtail import frequency_bands

WORDS = [
    "apple",
    "banana",
    "cherry",
    "grape",
    "lemon",
    "mango",
    "melon",
    "olive",
    "peach",
    "pear",
    "plum",
    "berry",
    "kiwi",
    "lime",
    "date",
    "fig",
    "guava",
    "papaya",
    "quince",
    "apricot",
    "orange",
    "nectarine",
    "raisin",
    "walnut",
    "almond",
    "pecan",
    "cashew",
    "hazelnut",
    "peanut",
    "pistachio",
]


def ngram_encoder(texts: list[str]) -> np.ndarray:
    """Hashed character trigrams into 64 dimensions: similar strings get close vectors."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for row, text in enumerate(texts):
        padded = f"  {text.lower()} "
        for start in range(len(padded) - 2):
            out[row, zlib.crc32(padded[start : start + 3].encode()) % 64] += 1.0
    return out


def test_query_log_sums_repeats_and_keeps_first_order(tmp_path):
    log = tmp_path / "log.tsv"
    log.write_text("red apple\t3\n\nbanana\t1.5\nred apple\t2\nfig tree\t1e2\n", encoding="utf-8")
    queries, counts = read_query_log(log)
    assert queries == ["red apple", "banana", "fig tree"]
    assert counts.tolist() == [5.0, 1.5, 100.0]


@pytest.mark.parametrize(
    "text, message",
    [
        ("apple 3\n", "line 1: expected 'query<TAB>count'"),
        ("apple\tmany\n", "line 1: count 'many' is not a number"),
        ("ok\t1\napple\t0\n", "line 2: count must be a positive number"),
        ("apple\tnan\n", "count must be a positive number"),
        ("\n\n", "no queries"),
    ],
)
def test_bad_query_logs_name_the_line(tmp_path, text, message):
    log = tmp_path / "log.tsv"
    log.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        read_query_log(log)


def test_documents_need_text(tmp_path):
    empty = tmp_path / "docs.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(InputError, match="no documents"):
        read_documents(empty)
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00abc")
    with pytest.raises(InputError, match="not UTF-8"):
        read_documents(binary)
    with pytest.raises(InputError, match="no such file"):
        read_documents(tmp_path / "missing.txt")


def test_dataset_from_text_has_exact_truth_weights_and_texts(tmp_path):
    documents = WORDS + [f"{a} {b}" for a, b in zip(WORDS, WORDS[3:], strict=False)]
    queries = ["apple pie", "bananas", "cherries", "plum jam", "nuts", "lemonade"]
    counts = np.array([900.0, 300.0, 40.0, 7.0, 2.0, 1.0])
    output = tmp_path / "mine.hdf5"
    made = dataset_from_text(documents, queries, counts, ngram_encoder, output, k=20)
    assert (made.documents, made.queries, made.dim, made.k) == (len(documents), 6, 64, 20)

    dataset = load_dataset(output)
    assert dataset.metric == "angular" and dataset.gt_depth == 20
    np.testing.assert_array_equal(dataset.weights, counts)
    assert read_query_text(output) == queries
    # independent exact answer: cosine over the encoder's vectors in float64
    base = ngram_encoder(documents).astype(np.float64)
    query_vectors = ngram_encoder(queries).astype(np.float64)
    cosine = (query_vectors @ base.T) / np.outer(
        np.linalg.norm(query_vectors, axis=1), np.linalg.norm(base, axis=1)
    )
    expected = np.sort(1.0 - cosine, axis=1)[:, :20]
    import h5py

    with h5py.File(output, "r") as handle:
        np.testing.assert_allclose(handle["distances"][:], expected, atol=1e-6)
    for row in range(len(queries)):
        found = 1.0 - cosine[row, dataset.neighbors[row]]
        np.testing.assert_allclose(found, expected[row], atol=1e-6)
    # the counts drive the frequency bands: the most frequent query is head
    bands = frequency_bands(dataset.weights, (0.2, 0.6))
    assert bands[0] == "head" and bands[-1] == "tail"


def test_encoder_output_is_checked(tmp_path):
    with pytest.raises(InputError, match="returned shape"):
        dataset_from_text(
            ["a", "b"], ["q"], np.ones(1), lambda texts: np.ones((1, 4)), tmp_path / "x.hdf5"
        )
    with pytest.raises(InputError, match="NaN or infinite"):
        dataset_from_text(
            ["a"],
            ["q"],
            np.ones(1),
            lambda texts: np.full((len(texts), 4), np.nan),
            tmp_path / "x.hdf5",
        )
    with pytest.raises(InputError, match="zero vector"):
        dataset_from_text(
            ["a"], ["q"], np.ones(1), lambda texts: np.zeros((len(texts), 4)), tmp_path / "x.hdf5"
        )
    assert not (tmp_path / "x.hdf5").exists()


def _texts(tmp_path):
    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(WORDS) + "\n", encoding="utf-8")
    log = tmp_path / "log.tsv"
    log.write_text("apple pie\t10\nplum\t1\n", encoding="utf-8")
    return docs, log


def test_cli_refuses_a_missing_model_folder(tmp_path):
    docs, log = _texts(tmp_path)
    result = run_cli(
        "datasets",
        "from-text",
        "--docs",
        str(docs),
        "--queries",
        str(log),
        "--model",
        str(tmp_path / "nope"),
        "-o",
        str(tmp_path / "out.hdf5"),
    )
    assert result.exit_code == 2
    assert "not a folder" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is not None,
    reason="the embed extra is installed",
)
def test_cli_without_the_extra_says_how_to_install_it(tmp_path):
    docs, log = _texts(tmp_path)
    result = run_cli(
        "datasets",
        "from-text",
        "--docs",
        str(docs),
        "--queries",
        str(log),
        "--model",
        str(tmp_path),
        "-o",
        str(tmp_path / "out.hdf5"),
    )
    assert result.exit_code == 2 and "pip install 'annkit[embed]'" in result.stderr


def _tiny_local_model(folder) -> str:
    """A sentence-transformers model built here, with nothing downloaded: a word-level
    tokenizer over WORDS and a seeded random static embedding, saved to ``folder``."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import StaticEmbedding
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocabulary = ["[UNK]", "[PAD]", *WORDS]
    tokenizer = Tokenizer(
        models.WordLevel({w: i for i, w in enumerate(vocabulary)}, unk_token="[UNK]")
    )
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    weights = torch.tensor(
        np.random.default_rng(0).standard_normal((len(vocabulary), 16)), dtype=torch.float32
    )
    model = SentenceTransformer(
        modules=[StaticEmbedding(tokenizer, embedding_weights=weights)], device="cpu"
    )
    model.save(str(folder))
    return str(folder)


@pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is None,
    reason="needs the embed extra: pip install 'annkit[embed]'",
)
def test_cli_with_a_real_local_model(tmp_path):
    """The real sentence-transformers path: ANNKIT_TEST_MODEL (a saved model folder) when
    set, else a tiny model built locally."""
    model = os.environ.get("ANNKIT_TEST_MODEL") or _tiny_local_model(tmp_path / "model")
    docs, log = _texts(tmp_path)
    out = tmp_path / "out.hdf5"
    result = run_cli(
        "datasets",
        "from-text",
        "--docs",
        str(docs),
        "--queries",
        str(log),
        "--model",
        model,
        "-o",
        str(out),
        "-k",
        "5",
        "-q",
    )
    assert result.exit_code == 0, result.output
    dataset = load_dataset(out)
    assert dataset.n_base == len(WORDS) and dataset.n_queries == 2 and dataset.gt_depth == 5
    base, queries = (np.asarray(a, dtype=np.float64) for a in (dataset.base, dataset.queries))
    truth = np.argsort(
        1
        - (queries @ base.T)
        / np.outer(np.linalg.norm(queries, axis=1), np.linalg.norm(base, axis=1)),
        axis=1,
        kind="stable",
    )
    np.testing.assert_array_equal(dataset.neighbors[:, :5], truth[:, :5])
