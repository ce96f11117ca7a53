"""Built-in engines; importing this package registers them."""

from annkit.engines import (  # noqa: F401 - importing registers them
    annoy,
    chroma,
    duckdb,
    faiss,
    flat,
    hnsw,
    ivfpq,
    lancedb,
    nmslib,
    pgvector,
    scann,
    usearch,
)
from annkit.engines.base import (
    Engine,
    ParamSpec,
    engine_names,
    get_engine,
    plugin_errors,
    register,
    unregister,
)

__all__ = [
    "Engine",
    "ParamSpec",
    "engine_names",
    "get_engine",
    "plugin_errors",
    "register",
    "unregister",
]
