"""Built-in engines; importing this package registers them."""

from annkit.engines import annoy, faiss_factory, flat, hnsw, ivfpq, usearch_hnsw  # noqa: F401
from annkit.engines.base import (
    Engine,
    ParamSpec,
    engine_names,
    get_engine,
    plugin_errors,
    register,
    unregister,
)

__all__ = ["Engine", "ParamSpec", "engine_names", "get_engine", "plugin_errors", "register",
           "unregister"]
