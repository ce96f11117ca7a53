"""Each changeable engine keeps ids right through inserts, deletes and replaces: a deleted id
is never returned, a replaced id is found at its new vector, a reinserted id comes back."""

from __future__ import annotations

import numpy as np
import pytest

from annkit.engines import get_engine

CHANGEABLE = [
    ("hnsw", {"M": 8, "ef_construction": 60}, {"ef": 100}),
    ("faiss", {"factory": "IVF8,Flat"}, {"nprobe": 8}),
    ("faiss", {"factory": "Flat"}, {}),
    ("usearch", {"connectivity": 8}, {"expansion_search": 100}),
]


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return np.random.default_rng(4).standard_normal((1200, 16)).astype(np.float32)


@pytest.mark.parametrize(("name", "build", "query"), CHANGEABLE)
def test_ids_stay_right_through_changes(vectors, name, build, query):
    cls = get_engine(name)
    assert set(cls.changes_for(build)[0]) == {"insert", "delete", "replace"}
    engine = cls("euclidean", 16, **build)
    engine.build_changeable(vectors[:600], np.arange(600), capacity=800)
    engine.set_query_params(**query)
    engine.delete(np.arange(0, 200))
    assert engine.count == 400
    engine.insert(vectors[600:800], np.arange(600, 800))
    # ids 300..309 now hold the vectors of rows 1000..1009
    engine.replace(vectors[1000:1010], np.arange(300, 310))
    assert engine.count == 600
    found = engine.search(vectors[:200], 10).ids
    assert not np.isin(found, np.arange(0, 200)).any()  # deleted ids never come back
    assert found.min() >= 200
    at_new = engine.search(vectors[1000:1010], 1).ids[:, 0]
    assert at_new.tolist() == list(range(300, 310))
    at_old = engine.search(vectors[300:310], 1).ids[:, 0]
    assert not np.isin(at_old, np.arange(300, 310)).any()
    engine.insert(vectors[0:50], np.arange(0, 50))  # deleted ids can come back
    assert engine.search(vectors[0:50], 1).ids[:, 0].tolist() == list(range(50))
    assert engine.index_memory_bytes() is None or engine.index_memory_bytes() > 0


@pytest.mark.parametrize(
    ("name", "build", "takes"),
    [("annoy", {}, ()), ("faiss", {"factory": "HNSW16,Flat"}, ("insert",))],
)
def test_engines_that_cannot_change_say_so(name, build, takes):
    taken, why = get_engine(name).changes_for(build)
    assert taken == takes and why


def test_faiss_hnsw_takes_inserts(vectors):
    engine = get_engine("faiss")("euclidean", 16, factory="HNSW16,Flat")
    engine.build_changeable(vectors[:300], np.arange(1000, 1300), capacity=600)
    engine.insert(vectors[300:600], np.arange(1300, 1600))
    engine.set_query_params(efSearch=64)
    found = engine.search(vectors[:20], 1).ids[:, 0]
    assert found.tolist() == list(range(1000, 1020))
