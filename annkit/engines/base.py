"""The engine interface, parameter specs and the engine registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from annkit.errors import ParamError
from annkit.faiss_util import as_float32_rows, normalized_rows  # noqa: F401 (re-exported)
from annkit.types import SearchResult


@dataclass(frozen=True)
class ParamSpec:
    """One build or query parameter: its type, default, bounds and direction.

    ``effort`` is True when a larger value means more work and (typically) higher recall;
    tuning relies on that monotonicity. ``default`` None means "derived from the data".
    """

    type: type
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    effort: bool = False
    choices: tuple[Any, ...] | None = None

    def coerce(self, name: str, value: Any) -> Any:
        """Convert a value (possibly a string from the command line) and check its bounds."""
        try:
            if self.type is bool:
                if isinstance(value, str):
                    lowered = value.strip().lower()
                    if lowered not in ("1", "0", "true", "false", "yes", "no"):
                        raise ValueError(value)
                    converted: Any = lowered in ("1", "true", "yes")
                else:
                    converted = bool(value)
            elif self.type is int:
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError(value)
                converted = int(str(value).strip()) if isinstance(value, str) else int(value)
            elif self.type is float:
                if isinstance(value, bool):
                    raise ValueError(value)
                converted = float(value)
            else:
                converted = self.type(value)
        except (TypeError, ValueError):
            raise ParamError(
                f"parameter {name}: expected {self.type.__name__}, got {value!r}"
            ) from None
        if self.minimum is not None and converted < self.minimum:
            raise ParamError(f"parameter {name}: must be >= {self.minimum:g}, got {converted}")
        if self.maximum is not None and converted > self.maximum:
            raise ParamError(f"parameter {name}: must be <= {self.maximum:g}, got {converted}")
        if self.choices is not None and converted not in self.choices:
            raise ParamError(
                f"parameter {name}: must be one of {list(self.choices)}, got {converted}"
            )
        return converted


def resolve_params(
    engine: str, specs: dict[str, ParamSpec], given: dict[str, Any], kind: str
) -> dict[str, Any]:
    """Merge ``given`` over the defaults of ``specs``; unknown names are an error."""
    unknown = sorted(set(given) - set(specs))
    if unknown:
        known = ", ".join(sorted(specs)) or "none"
        raise ParamError(
            f"engine {engine} has no {kind} parameter {unknown[0]!r} (known: {known})"
        )
    resolved = {name: spec.default for name, spec in specs.items()}
    for name, value in given.items():
        resolved[name] = specs[name].coerce(name, value)
    return resolved


class Engine(ABC):
    """An ANN index: built once from base vectors, searched with changeable query params.

    Build params go to the constructor, query params to :meth:`set_query_params`.
    ``search`` returns ids (nq, k) int64 padded with -1 and distances in the metric's
    convention: euclidean = L2 distance, angular = 1 - cosine similarity, ip = -inner product.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    build_params: ClassVar[dict[str, ParamSpec]]
    query_params: ClassVar[dict[str, ParamSpec]]
    #: the query parameter that trades speed for recall (None for exact engines)
    effort_param: ClassVar[str | None] = None

    def __init__(self, metric: str, dim: int, **params: Any) -> None:
        self.metric = metric
        self.dim = int(dim)
        self.params = resolve_params(self.name, self.build_params, params, "build")
        self.query = resolve_params(self.name, self.query_params, {}, "query")
        self.count = 0

    def set_query_params(self, **params: Any) -> None:
        """Set query params (unknown names are an error); unspecified ones keep their value."""
        resolved = resolve_params(self.name, self.query_params, params, "query")
        for name in params:
            self.query[name] = resolved[name]
        self._apply_query_params()

    def _apply_query_params(self) -> None:  # noqa: B027 - optional hook
        """Push ``self.query`` into the native index (engines override when needed)."""

    def resolved_build_params(self) -> dict[str, Any]:
        """Build params with data-derived defaults filled in (valid after build/load)."""
        return dict(self.params)

    @abstractmethod
    def build(self, base: np.ndarray, threads: int = 1) -> None:
        """Build the index over ``base`` (n, d) float32 using ``threads`` threads."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        """Search a batch (nq, d) float32 with one thread; see the class docstring."""

    @abstractmethod
    def save(self, directory: Path) -> list[str]:
        """Write the native payload into ``directory``; return the file names written."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path, metric: str, dim: int, count: int, params: dict) -> Engine:
        """Load an index saved by :meth:`save` (files already verified by the bundle)."""

    def library_versions(self) -> dict[str, str]:
        """Versions of the native libraries this engine uses."""
        return {}

    def estimate_build_bytes(self, count: int) -> int:
        """Rough peak memory (bytes) of building over ``count`` vectors, beyond the input."""
        return 2 * count * self.dim * 4


def pad_result(ids: np.ndarray, distances: np.ndarray) -> SearchResult:
    """Normalise a native result: int64 ids with -1 for missing, +inf distances there."""
    ids = np.asarray(ids, dtype=np.int64)
    distances = np.asarray(distances, dtype=np.float32)
    missing = ids < 0
    if missing.any():
        ids = np.where(missing, -1, ids)
        distances = np.where(missing, np.float32(np.inf), distances)
    return SearchResult(ids=ids, distances=distances)


_REGISTRY: dict[str, type[Engine]] = {}


def register(cls: type[Engine]) -> type[Engine]:
    """Class decorator adding an engine to the registry under ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def get_engine(name: str) -> type[Engine]:
    """The engine class registered under ``name``."""
    from annkit import engines  # noqa: F401 - importing registers the built-in engines

    if name not in _REGISTRY:
        raise ParamError(f"unknown engine {name!r} (known: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name]


def engine_names() -> list[str]:
    """Names of all registered engines."""
    from annkit import engines  # noqa: F401

    return sorted(_REGISTRY)
