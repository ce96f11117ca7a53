"""The faiss index_factory string parser (annkit.engines.faiss_factory_string)."""

from __future__ import annotations

import pytest

from annkit.engines.faiss_factory_string import (
    FactoryShape,
    check_factory,
    check_factory_syntax,
    check_training_size,
    factory_nlist,
    factory_query_specs,
    faiss_reason,
    parse_factory,
)
from annkit.errors import ParamError


@pytest.mark.parametrize(
    ("factory", "shape", "knobs"),
    [
        ("HNSW32,Flat", FactoryShape("hnsw", False, False), ["efSearch"]),
        ("IVF64,Flat", FactoryShape("ivf", False, False), ["nprobe"]),
        ("IVF1024,PQ48x4fs,RFlat", FactoryShape("ivf", False, True), ["nprobe", "k_factor"]),
        (
            "OPQ48_192,IVF4096_HNSW32,PQ48",
            FactoryShape("ivf", True, False),
            ["nprobe", "quantizer_efSearch"],
        ),
        ("IMI2x8,PQ16", FactoryShape("ivf", False, False), ["nprobe"]),
        ("PCA64,HNSW16,Flat", FactoryShape("hnsw", False, False), ["efSearch"]),
        ("HNSW32,Flat,Refine(Flat)", FactoryShape("hnsw", False, True), ["efSearch", "k_factor"]),
        ("IVF256,SQ8", FactoryShape("ivf", False, False), ["nprobe"]),
        ("Flat", FactoryShape("other", False, False), []),
        ("PQ16x4fs,RFlat", FactoryShape("other", False, True), ["k_factor"]),
    ],
)
def test_real_factory_strings_parse_into_their_parts(factory, shape, knobs):
    assert parse_factory(factory) == shape
    assert list(factory_query_specs(factory)) == knobs


def test_knob_defaults_and_bounds():
    specs = factory_query_specs("IVF1024_HNSW32,PQ48x4fs,RFlat")
    assert specs["nprobe"].default == 16 and specs["nprobe"].effort
    assert specs["quantizer_efSearch"].default == 64
    assert specs["k_factor"].type is float and specs["k_factor"].maximum == 1000.0
    assert factory_query_specs("HNSW32,Flat")["efSearch"].effort


def test_a_lone_refine_is_not_a_refine_stage():
    assert parse_factory("RFlat") == FactoryShape("other", False, False)


@pytest.mark.parametrize(
    ("factory", "words"),
    [
        ("", "empty component"),
        ("IVF64,,Flat", "empty component"),
        ("HNSW0,Flat", "HNSW0 in 'HNSW0,Flat': the graph degree must be between 2 and 2048"),
        ("HNSW4096,Flat", "the graph degree must be between 2 and 2048"),
        ("IVF0,Flat", "sizes must be at least 1"),
        ("IVF64,PQ8x25", "PQ8x25 in 'IVF64,PQ8x25': at most 24 bits per code"),
        ("PCA100000,Flat", "at most 65536 output dimensions"),
    ],
)
def test_numbers_faiss_would_abort_on_are_refused(factory, words):
    with pytest.raises(ParamError, match=words.replace("(", r"\(")):
        parse_factory(factory)


def test_nlist_is_read_from_the_string():
    assert factory_nlist("IVF1024,PQ48x4fs,RFlat") == 1024
    assert factory_nlist("OPQ16_64,IVF4096_HNSW32,PQ16") == 4096
    assert factory_nlist("HNSW32,Flat") == 1


def test_training_size_must_cover_lists_and_codebooks():
    check_training_size("IVF64,PQ8x8", 1000, 256)
    with pytest.raises(ParamError, match="IVF64 needs at least 64 training vectors, have 10"):
        check_training_size("IVF64,Flat", 10, 10)
    with pytest.raises(ParamError, match="PQ8x10 needs at least 1024 training vectors"):
        check_training_size("IVF64,PQ8x10", 1000, 1000)


def test_faiss_reason_keeps_the_human_part():
    exc = RuntimeError(
        "Error in faiss::Index* faiss::index_factory(int, const char*, MetricType) at "
        "/project/faiss/faiss/index_factory.cpp:1012: could not parse index string IVF,PQ"
    )
    assert faiss_reason(exc) == "could not parse index string IVF,PQ"
    assert faiss_reason(RuntimeError("")) == "RuntimeError"


def test_a_typo_is_refused_with_faiss_own_reason():
    pytest.importorskip("faiss")
    with pytest.raises(ParamError, match="faiss rejects index_factory string 'HNSW32,Falt'"):
        check_factory_syntax("HNSW32,Falt")
    with pytest.raises(ParamError, match="faiss rejects index_factory string 'IVF,PQ'"):
        check_factory_syntax("IVF,PQ")
    check_factory_syntax("IVF1024,PQ48x4fs,RFlat")  # a good string passes


def test_the_dimension_dependent_checks():
    pytest.importorskip("faiss")
    check_factory("IVF64,PQ8", 64)
    with pytest.raises(ParamError, match="8 sub-quantizers must divide the dimension 60"):
        check_factory("IVF64,PQ8", 60)
    check_factory("OPQ8_64,IVF64,PQ8", 60)  # the transform fixes the dimension PQ codes
    with pytest.raises(ParamError, match="PCA cannot output 128 dimensions from 64"):
        check_factory("PCA128,Flat", 64)
