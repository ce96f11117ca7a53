"""The engine interface, parameter specs and the engine registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from annkit.errors import EngineError, ParamError
from annkit.faiss_util import as_float32_rows, normalized_rows  # noqa: F401 (re-exported)
from annkit.types import DEFAULT_WORK_UNIT, SearchResult


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
        raise ParamError(f"engine {engine} has no {kind} parameter {unknown[0]!r} (known: {known})")
    resolved = {name: spec.default for name, spec in specs.items()}
    for name, value in given.items():
        resolved[name] = specs[name].coerce(name, value)
    return resolved


class Engine(ABC):
    """An ANN index: built once from base vectors, searched with changeable query params.

    Build params go to the constructor, query params to :meth:`set_query_params`.
    ``search`` returns ids (nq, k) int64 padded with -1 and distances in the metric's
    convention: euclidean = L2 distance, angular = 1 - cosine similarity, ip = -inner product;
    and, when :attr:`counts_distances` is True, the exact number of distance computations
    each query did.

    Everything engine-specific lives on the subclass: its query parameters
    (:meth:`query_specs`), effort parameter and grids (:meth:`effort_grid`,
    :meth:`tune_build_grid`), memory estimate, library versions and the settings its
    contract test uses (:attr:`contract_settings`).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    build_specs: ClassVar[dict[str, ParamSpec]]
    #: query params of every build (an engine whose knobs depend on the build overrides
    #: :meth:`query_specs`)
    default_query_params: ClassVar[dict[str, ParamSpec]] = {}
    #: True for the exact engine a sweep measures speed-ups against (one per registry)
    exact_reference: ClassVar[bool] = False
    #: True when search() fills SearchResult.distance_computations exactly
    counts_distances: ClassVar[bool] = False
    #: False when the library's batch search can return other neighbours than searching
    #: one query at a time: single mode then takes its untimed results one query per call
    batch_answers_like_single: ClassVar[bool] = True
    #: most threads :meth:`search` can use on one batch: 1 (the default, so engines written
    #: before threaded search keep working) or None for no limit
    max_search_threads: ClassVar[int | None] = 1
    #: threads the next :meth:`search` calls use (see :meth:`set_search_threads`)
    search_threads: int = 1
    #: (build params, query params) reaching recall@10 >= 0.9 on the bundled words-10k
    contract_settings: ClassVar[tuple[dict[str, Any], dict[str, Any]]] = ({}, {})
    #: (build params, query params) small and quick to build: the quick contract test uses
    #: them on 2,000 vectors of words-10k (recall@10 >= 0.9), the fuzz corpus its build
    #: params on 700 random vectors of dimension 16; None means :attr:`contract_settings`
    small_contract_settings: ClassVar[tuple[dict[str, Any], dict[str, Any]] | None] = None
    #: filter strategies the engine runs natively (``native``: e.g. a database's WHERE clause);
    #: empty = only the strategies annkit provides for any engine
    native_filters: ClassVar[tuple[str, ...]] = ()
    #: seconds of each build phase (e.g. a database's load, index and optimise), filled by
    #: build(); None for engines that do not break their build time down
    build_phases: dict[str, float] | None = None
    #: False while a caller times :meth:`search` (see :meth:`uncounted`): an engine whose
    #: counting costs work beyond the search skips it then
    counting: bool = True
    #: the changes an index takes after it is built (streaming runbooks): any of "insert",
    #: "delete" and "replace"; empty = it cannot change once built. An engine whose answer
    #: depends on its build params overrides :meth:`changes_for`.
    changes: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Accept engines written against the old interface: a dict ``build_params`` class
        attribute becomes ``build_specs``, a dict ``query_params`` one
        ``default_query_params``; a string ``effort_param`` is dropped (the
        query spec marked ``effort=True`` names it)."""
        super().__init_subclass__(**kwargs)
        legacy_build = cls.__dict__.get("build_params")
        if isinstance(legacy_build, Mapping):
            cls.build_specs = dict(legacy_build)
            delattr(cls, "build_params")
        legacy = cls.__dict__.get("query_params")
        if isinstance(legacy, Mapping):
            cls.default_query_params = dict(legacy)
            delattr(cls, "query_params")
        if "effort_param" in cls.__dict__ and not isinstance(
            cls.__dict__["effort_param"], property
        ):
            delattr(cls, "effort_param")

    def __init__(self, metric: str, dim: int, **params: Any) -> None:
        self.metric = metric
        self.dim = int(dim)
        self.params = resolve_params(self.name, self.build_specs, params, "build")
        self.query = resolve_params(self.name, self.index_query_specs(), {}, "query")
        self.count = 0

    @classmethod
    def query_specs(cls, build_params: Mapping[str, Any]) -> dict[str, ParamSpec]:
        """The query parameters of an index built with ``build_params``."""
        return dict(cls.default_query_params)

    def index_query_specs(self) -> dict[str, ParamSpec]:
        """The query parameters of this index (its build params decide them)."""
        return self.query_specs(self.params)

    @classmethod
    def effort_param_for(cls, build_params: Mapping[str, Any]) -> str | None:
        """The query parameter that trades speed for recall for ``build_params`` (the spec
        marked ``effort=True``); None for exact engines."""
        for name, spec in cls.query_specs(build_params).items():
            if spec.effort:
                return name
        return None

    @property
    def effort_param(self) -> str | None:
        """The effort query parameter of this index (None for exact engines)."""
        return self.effort_param_for(self.params)

    def effort_grid(self, k: int, n_base: int) -> list[int]:
        """The increasing effort values ``effort`` and ``tune`` try by default (valid after
        build/load, when the build params are resolved). This default doubles from an eighth
        of the parameter's default to eight times it, within its bounds; engines override it
        with a grid that fits them."""
        param = self.effort_param
        if param is None:
            raise ParamError(f"engine {self.name} has no effort parameter (it searches exactly)")
        spec = self.index_query_specs()[param]
        low = max(1, int(spec.minimum or 1))
        centre = spec.default if isinstance(spec.default, int) and spec.default > 0 else 32
        values = {max(low, int(centre * 2.0**power)) for power in range(-3, 4)}
        if spec.maximum is not None:
            values = {min(value, int(spec.maximum)) for value in values}
        return sorted(values)

    @classmethod
    def tune_build_grid(cls, n_base: int) -> dict[str, list[Any]]:
        """The small build grid ``tune`` tries by default over ``n_base`` vectors ({} = the
        defaults only)."""
        return {}

    @classmethod
    def library_versions(cls) -> dict[str, str]:
        """Versions of the native libraries this engine uses."""
        return {}

    def set_query_params(self, **params: Any) -> None:
        """Set query params (unknown names are an error); unspecified ones keep their value."""
        specs = self.index_query_specs()
        resolved = resolve_params(self.name, specs, params, "query")
        # the specs may have changed since __init__ (build params resolved by build/load)
        self.query = {name: self.query.get(name, resolved[name]) for name in specs}
        for name in params:
            self.query[name] = resolved[name]
        self._apply_query_params()

    def set_search_threads(self, threads: int) -> None:
        """Search each later batch with ``threads`` threads (the library's own parallel batch
        search; results are the same as with one thread). ParamError when the engine cannot
        use that many."""
        threads = int(threads)
        if threads < 1:
            raise ParamError(f"search threads must be >= 1, got {threads}")
        limit = self.max_search_threads
        if limit is not None and threads > limit:
            raise ParamError(
                f"engine {self.name} searches with at most {limit} thread"
                f"{'s' if limit > 1 else ''}; use --search-threads {limit} "
                "(or --clients for concurrent single-query callers)"
            )
        self.search_threads = threads

    @contextmanager
    def single_queries(
        self, queries: np.ndarray, k: int
    ) -> Iterator[tuple[Sequence[Any], Callable[[Any], object]]]:
        """The per-query path that single-mode timing calls, built once per setting: (one
        item per row of ``queries``, prepared as the library takes a single query, and a
        function searching one item for its ``k`` nearest, whose return value is discarded).
        Results for recall and work come from :meth:`search`, outside the clock, so this
        path only needs to do the library's own work. The default searches each (1, d) row
        with :meth:`search`; an engine overrides it with a bare library call."""
        rows = as_float32_rows(queries)
        search = self.search
        yield [rows[row : row + 1] for row in range(len(rows))], lambda row: search(row, k)

    @contextmanager
    def uncounted(self) -> Iterator[None]:
        """Searches inside skip any counting that costs work beyond the search itself (their
        ``distance_computations`` may then be None): for timed passes, counted afterwards
        with :meth:`count_distances`."""
        saved = self.counting
        self.counting = False
        try:
            yield
        finally:
            self.counting = saved

    def count_distances(self, queries: np.ndarray, k: int) -> np.ndarray | None:
        """Exact distance computations (nq,) int64 that :meth:`search` does for each of
        ``queries`` at the current query params, or None where the library cannot count. Not
        for timing: engines whose counters are per call count one query per call here. The
        default searches (counting) and returns what the search reported."""
        if not self.counts_distances:
            return None
        saved = self.counting
        self.counting = True
        try:
            return self.search(queries, k).distance_computations
        finally:
            self.counting = saved

    def work_unit(self) -> str:
        """What :attr:`SearchResult.distance_computations` counts for this index (valid
        after build/load): plain ``distance computations`` (full-precision vectors) unless
        the engine says otherwise, e.g. ``PQ code distances`` for an index that compares
        compressed codes (far cheaper each, so their counts are not comparable)."""
        return DEFAULT_WORK_UNIT

    def _apply_query_params(self) -> None:  # noqa: B027 - optional hook
        """Push ``self.query`` into the native index (engines override when needed)."""

    def built_params(self) -> dict[str, Any]:
        """Build params with data-derived defaults filled in (valid after build/load)."""
        return dict(self.params)

    def build_params_for(self, count: int) -> dict[str, Any]:
        """Build params with every data-derived default filled in as a build over ``count``
        vectors would fill it, before building: the index cache keys on these, so that a
        default and its explicit value share one cached index. Engines whose defaults
        depend on the data override this."""
        return dict(self.params)

    @abstractmethod
    def build(self, base: np.ndarray, threads: int = 1) -> None:
        """Build the index over ``base`` (n, d) float32 using ``threads`` threads."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        """Search a batch (nq, d) float32 with :attr:`search_threads` threads (one unless
        :meth:`set_search_threads` said otherwise); see the class docstring."""

    @abstractmethod
    def save(self, directory: Path) -> list[str]:
        """Write the native payload into ``directory``; return the file names written."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path, metric: str, dim: int, count: int, params: dict) -> Engine:
        """Load an index saved by :meth:`save` (files already verified by the bundle)."""

    def estimate_build_bytes(self, count: int) -> int:
        """Rough peak memory (bytes) of building over ``count`` vectors, beyond the input."""
        return 2 * count * self.dim * 4

    # ------------------------------------------------------------------ changes (streaming)

    @classmethod
    def changes_for(cls, build_params: Mapping[str, Any]) -> tuple[tuple[str, ...], str]:
        """(the changes an index built with ``build_params`` takes after its build, and why it
        takes no more: a few words, "" when it takes all three)."""
        if set(cls.changes) >= set(CHANGES):
            return tuple(cls.changes), ""
        if cls.changes:
            return tuple(cls.changes), "it takes only " + " and ".join(cls.changes)
        return (), "it cannot change after it is built"

    def _cannot_change(self) -> EngineError:
        return EngineError(f"engine {self.name}: {self.changes_for(self.params)[1]}")

    def build_changeable(
        self, vectors: np.ndarray, ids: np.ndarray, capacity: int, threads: int = 1
    ) -> None:
        """Build over ``vectors`` (n, d) under ``ids`` (n,) int64 (not their row numbers), ready
        to take the changes :meth:`changes_for` declares while it holds up to ``capacity``
        live vectors (an engine may grow past it). :attr:`count` is then the live count."""
        raise self._cannot_change()

    def insert(self, vectors: np.ndarray, ids: np.ndarray, threads: int = 1) -> None:
        """Add ``vectors`` (n, d) under ``ids`` (n,) int64, none of them live."""
        raise self._cannot_change()

    def delete(self, ids: np.ndarray) -> None:
        """Remove the live ``ids`` (n,) int64: a search never returns them again."""
        raise self._cannot_change()

    def replace(self, vectors: np.ndarray, ids: np.ndarray, threads: int = 1) -> None:
        """Give the live ``ids`` (n,) the new ``vectors`` (n, d): by default a delete, then an
        insert."""
        self.delete(ids)
        self.insert(vectors, ids, threads)

    def index_memory_bytes(self) -> int | None:
        """Bytes the index holds now (its vectors, links and lists, as the library reports
        them), or None where the library cannot say."""
        return None


#: the changes a streaming runbook makes to an index after its build
CHANGES: tuple[str, ...] = ("insert", "delete", "replace")


def from_graph_distance(distances: np.ndarray, metric: str) -> np.ndarray:
    """hnswlib / USearch distances (squared L2, 1 - cos, 1 - dot) in annkit's convention."""
    if metric == "euclidean":
        return np.sqrt(np.maximum(distances, 0.0))
    if metric == "ip":
        return distances - np.float32(1.0)
    return distances


def pad_result(ids: np.ndarray, distances: np.ndarray) -> SearchResult:
    """Normalise a native result: int64 ids with -1 for missing, +inf distances there."""
    ids = np.asarray(ids, dtype=np.int64)
    distances = np.asarray(distances, dtype=np.float32)
    missing = ids < 0
    if missing.any():
        ids = np.where(missing, -1, ids)
        distances = np.where(missing, np.float32(np.inf), distances)
    return SearchResult(ids=ids, distances=distances)


ENTRY_POINT_GROUP = "annkit.engines"
"""Third-party engines: each entry point in this group names an Engine subclass (or a module
whose import registers one with :func:`register`)."""

_REGISTRY: dict[str, type[Engine]] = {}
_PLUGIN_ERRORS: dict[str, str] = {}  # entry-point name -> why it was left out
_UNAVAILABLE: dict[str, str] = {}  # built-in engine whose optional extra is missing -> why
_plugins_loaded = False


def register_unavailable(name: str, reason: str) -> None:
    """Record a built-in engine that cannot run here (its optional extra is not installed):
    :func:`unavailable_engines` lists it with ``reason``, and asking for it is a one-line
    error saying what to install."""
    _UNAVAILABLE[name] = reason


def unavailable_engines() -> dict[str, str]:
    """Built-in engines left out because an optional extra is missing: name -> the reason."""
    _load_plugins()
    return {name: why for name, why in _UNAVAILABLE.items() if name not in _REGISTRY}


def register(cls: type[Engine]) -> type[Engine]:
    """Class decorator adding an engine to the registry under ``cls.name`` (replacing any
    engine of that name)."""
    if not (isinstance(cls, type) and issubclass(cls, Engine)):
        raise TypeError(f"register() takes an Engine subclass, got {cls!r}")
    _REGISTRY[cls.name] = cls
    return cls


def unregister(name: str) -> type[Engine] | None:
    """Remove the engine registered under ``name``; returns it (None when there was none)."""
    return _REGISTRY.pop(name, None)


def _load_plugins() -> None:
    """Import the built-in engines and, once per process, the ``annkit.engines`` entry
    points. A plugin that fails to load is left out; :func:`get_engine` says why."""
    global _plugins_loaded
    from annkit import engines  # noqa: F401 - importing registers the built-in engines

    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break annkit
            _PLUGIN_ERRORS[entry.name] = f"{type(exc).__name__}: {exc}"
            continue
        if isinstance(loaded, type) and issubclass(loaded, Engine):
            taken = _REGISTRY.get(loaded.name)
            if taken is not None and taken is not loaded:
                _PLUGIN_ERRORS[entry.name] = (
                    f"its engine name {loaded.name!r} is taken by {taken.__module__}"
                )
                continue
            _REGISTRY[loaded.name] = loaded
        elif not isinstance(loaded, ModuleType):
            _PLUGIN_ERRORS[entry.name] = f"{entry.value} is neither an Engine subclass nor a module"


def plugin_errors() -> dict[str, str]:
    """Entry-point plugins left out of the registry: entry-point name -> the reason."""
    _load_plugins()
    return dict(_PLUGIN_ERRORS)


def get_engine(name: str) -> type[Engine]:
    """The engine class registered under ``name`` (built-in or plugin)."""
    _load_plugins()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in _UNAVAILABLE:
        raise ParamError(f"engine {name} is not available here: {_UNAVAILABLE[name]}")
    if name in _PLUGIN_ERRORS:
        raise EngineError(
            f"engine plugin {name!r} could not be loaded ({_PLUGIN_ERRORS[name]}); "
            "fix or uninstall its package"
        )
    raise ParamError(f"unknown engine {name!r} (known: {', '.join(sorted(_REGISTRY))})")


def reference_engine() -> str:
    """Name of the exact engine that sweeps measure speed-ups against (the registered
    engine declaring ``exact_reference``)."""
    _load_plugins()
    for name, cls in _REGISTRY.items():
        if cls.exact_reference:
            return name
    raise EngineError("no registered engine declares exact_reference: annkit is damaged")


def is_reference(name: str) -> bool:
    """True when ``name`` is the registered exact reference engine."""
    _load_plugins()
    cls = _REGISTRY.get(name)
    return cls is not None and cls.exact_reference


def engine_names() -> list[str]:
    """Names of all registered engines (built-in and plugins), sorted."""
    _load_plugins()
    return sorted(_REGISTRY)
