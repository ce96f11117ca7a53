"""Reading a sweep file: TOML text to a validated :class:`~annkit.bench.spec.SweepSpec`,
every error naming the file, the line and the key (see :mod:`annkit.bench.spec` for the
format)."""

from __future__ import annotations

import itertools
import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from annkit.bench.errors import SweepError
from annkit.bench.policies import (
    ADAPT_DEFAULTS,
    ADAPT_KEYS,
    ADAPT_KINDS,
    PolicySetting,
    adapt_settings,
    check_policy_k,
    describe_policy_index,
    policy_fits_build,
    read_policy_file,
)
from annkit.bench.spec import (
    FILTER_STRATEGY_PARAM,
    RECALL_RULE_NAMES,
    BuildSetting,
    QuerySetting,
    SweepSpec,
    make_run_id,
)
from annkit.bench.toml_lines import Locator
from annkit.engines.base import engine_names, get_engine
from annkit.engines.labels import block_labels, index_labels
from annkit.errors import AnnkitError, InputError, ParamError
from annkit.measure import DEFAULT_QPS_TOLERANCE, FILTER_STRATEGIES, MODES

DEFAULT_SWEEP_NAME = "default sweep"

#: the default sweep's TOML text (``annkit bench --print-default``), from the package file
DEFAULT_SWEEP = (resources.files("annkit.bench") / "default-sweep.toml").read_text(encoding="utf-8")

BENCH_KEYS = (
    "dataset",
    "queries",
    "groundtruth",
    "metric",
    "k",
    "runs",
    "mode",
    "timeout",
    "recall",
    "qps_tolerance",
    "filter_strategy",
)
ENGINE_KEYS = ("name", "build", "query", "policy", "adapt", "label")
#: the keys an unknown-key error lists (``label``, a name only, is in the guide)
LISTED_ENGINE_KEYS = ENGINE_KEYS[:-1]


class _Reader:
    """Validates a parsed sweep document, raising SweepError with file and line."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.locator = Locator(text)

    def fail(self, line: int | None, message: str) -> SweepError:
        where = f"{self.source} line {line}" if line else self.source
        return SweepError(f"{where}: {message}")

    def bench(self, table: Any) -> dict[str, Any]:
        if table is None:
            table = {}
        if not isinstance(table, dict):
            raise self.fail(self.locator.table_key("", "bench"), "'bench' must be a table [bench]")
        line = self.locator.table_key
        for key in table:
            if key not in BENCH_KEYS:
                raise self.fail(
                    line("bench", key),
                    f"unknown [bench] key {key!r} (known: {', '.join(BENCH_KEYS)})",
                )
        out: dict[str, Any] = {}
        for key in ("dataset", "queries", "groundtruth", "metric", "mode", "recall"):
            if key in table:
                if not isinstance(table[key], str) or not table[key].strip():
                    raise self.fail(line("bench", key), f"[bench] {key} must be a non-empty string")
                out[key] = table[key]
        for key, default in (("k", 10), ("runs", 3)):
            value = table.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise self.fail(
                    line("bench", key), f"[bench] {key} must be an integer >= 1, got {value!r}"
                )
            out[key] = value
        out.setdefault("mode", "batch")
        out.setdefault("recall", "tolerant")
        if out["recall"] not in RECALL_RULE_NAMES:
            raise self.fail(
                line("bench", "recall"),
                "[bench] recall must be tolerant (ann-benchmarks) or strict (id "
                f"overlap), got {out['recall']!r}",
            )
        if out["mode"] not in MODES:
            raise self.fail(
                line("bench", "mode"),
                f"[bench] mode must be one of {', '.join(MODES)}, got {out['mode']!r}",
            )
        if "timeout" in table:
            value = table["timeout"]
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise self.fail(
                    line("bench", "timeout"),
                    f"[bench] timeout must be a number of seconds > 0, got {value!r}",
                )
            out["timeout"] = float(value)
        if "qps_tolerance" in table:
            value = table["qps_tolerance"]
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
                raise self.fail(
                    line("bench", "qps_tolerance"),
                    f"[bench] qps_tolerance must be a fraction in [0, 1), got {value!r}",
                )
            out["qps_tolerance"] = float(value)
        if "metric" in out:
            from annkit.types import normalize_metric

            try:
                out["metric"] = normalize_metric(out["metric"])
            except InputError as exc:
                raise self.fail(line("bench", "metric"), str(exc)) from None
        strategies = table.get("filter_strategy", "auto")
        listed = strategies if isinstance(strategies, list) else [strategies]
        if not listed or any(s not in FILTER_STRATEGIES for s in listed):
            raise self.fail(
                line("bench", "filter_strategy"),
                f"[bench] filter_strategy must be one of {', '.join(FILTER_STRATEGIES)} or a "
                f"list of them, got {strategies!r}",
            )
        out["filter_strategy"] = list(dict.fromkeys(listed))
        out.setdefault("dataset", "words-10k")
        return out

    def grid(
        self, position: int, engine: str, kind: str, table: Any, specs: dict
    ) -> list[dict[str, Any]]:
        """The cartesian product of one engine's build or query table, coerced."""
        locate = self.locator.engine_key
        if table is None:
            table = {}
        if not isinstance(table, dict):
            raise self.fail(
                locate(position, kind),
                f"engine {engine!r}: {kind} must be a table of parameters, "
                f"e.g. {kind} = {{ name = [1, 2] }}",
            )
        names = list(table)
        axes: list[list[Any]] = []
        for name in names:
            if name not in specs:
                known = ", ".join(sorted(specs)) or "none"
                raise self.fail(
                    locate(position, name, kind),
                    f"engine {engine!r} has no {kind} parameter {name!r} (known: {known})",
                )
            values = table[name] if isinstance(table[name], list) else [table[name]]
            if not values:
                raise self.fail(
                    locate(position, name, kind),
                    f"engine {engine!r}: {kind} parameter {name!r} has an empty "
                    "list (nothing to run)",
                )
            coerced = []
            for value in values:
                try:
                    item = specs[name].coerce(name, value)
                except ParamError as exc:
                    raise self.fail(
                        locate(position, name, kind), f"engine {engine!r}: {kind} {exc}"
                    ) from None
                if item not in coerced:
                    coerced.append(item)
            axes.append(coerced)
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes)]

    def policy_files(
        self, position: int, engine: str, value: Any, k: int, base_dir: Path | None
    ) -> list[tuple[Any, PolicySetting]]:
        """The trained policy files of an entry's ``policy`` key (paths from the sweep
        file's folder), read and checked."""
        if value is None:
            return []
        line = self.locator.engine_key(position, "policy")
        names = value if isinstance(value, list) else [value]
        if not names or not all(isinstance(name, str) and name.strip() for name in names):
            raise self.fail(
                line,
                f"engine {engine!r}: policy must be a policy file or a list "
                'of them, e.g. policy = ["hnsw16.policy.json"]',
            )
        out = []
        for name in dict.fromkeys(names):
            path = Path(name)
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            try:
                policy, setting = read_policy_file(path, name)
                check_policy_k(policy, k, name)
            except AnnkitError as exc:
                raise self.fail(line, f"engine {engine!r}: {exc}") from None
            if policy.engine != engine:
                raise self.fail(
                    line, f"engine {engine!r}: {name} is a policy for {policy.engine}, not {engine}"
                )
            out.append((policy, setting))
        return out

    def adapt_table(
        self, position: int, engine: str, table: Any, mode: str
    ) -> dict[str, Any] | None:
        """An entry's ``adapt`` table, checked: targets, kinds, folds, grid, seed, centroids."""
        if table is None:
            return None
        locate = self.locator.engine_key
        if not isinstance(table, dict):
            raise self.fail(
                locate(position, "adapt"),
                f"engine {engine!r}: adapt must be a table, e.g. "
                "adapt = { target = [0.95, 0.99] }",
            )
        for key in table:
            if key not in ADAPT_KEYS:
                raise self.fail(
                    locate(position, key, "adapt"),
                    f"engine {engine!r}: unknown adapt key {key!r} (known: "
                    f"{', '.join(ADAPT_KEYS)})",
                )
        if mode != "batch":
            raise self.fail(
                locate(position, "adapt"),
                "adapt scores its policies with batch searches: set mode = "
                '"batch" in [bench], or list trained policy files with policy = '
                "[...]",
            )

        def listed(key: str) -> list[Any]:
            value = table[key]
            return value if isinstance(value, list) else [value]

        def number(value: Any) -> bool:
            return isinstance(value, int | float) and not isinstance(value, bool)

        if "target" not in table:
            raise self.fail(
                locate(position, "adapt"),
                f"engine {engine!r}: adapt needs target = <mean recall@k> or a "
                "list of them, e.g. adapt = { target = [0.95, 0.99] }",
            )
        targets = listed("target")
        if not targets or not all(number(t) and 0 < t <= 1 for t in targets):
            raise self.fail(
                locate(position, "target", "adapt"),
                f"engine {engine!r}: adapt target must be a mean recall in (0, 1] "
                f"or a list of them, got {table['target']!r}",
            )
        kinds = listed("kinds") if "kinds" in table else list(ADAPT_KINDS)
        if not kinds or not all(kind in ADAPT_KINDS for kind in kinds):
            raise self.fail(
                locate(position, "kinds", "adapt"),
                f"engine {engine!r}: adapt kinds must be among "
                f"{', '.join(ADAPT_KINDS)}, got {table['kinds']!r}",
            )
        out: dict[str, Any] = {
            "targets": list(dict.fromkeys(float(t) for t in targets)),
            "kinds": list(dict.fromkeys(kinds)),
            "grid": None,
        }
        for key, least in (("folds", 2), ("seed", 0), ("centroids", 0)):
            value = table.get(key, ADAPT_DEFAULTS[key])
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise self.fail(
                    locate(position, key, "adapt"),
                    f"engine {engine!r}: adapt {key} must be an integer >= {least}, got {value!r}",
                )
            out[key] = value
        if "grid" in table:
            grid = listed("grid")
            if len(set(grid)) < 2 or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in grid
            ):
                raise self.fail(
                    locate(position, "grid", "adapt"),
                    f"engine {engine!r}: adapt grid must list at least two effort "
                    f"values >= 1, got {table['grid']!r}",
                )
            out["grid"] = tuple(sorted(set(grid)))
        return out

    def engines(
        self,
        blocks: Any,
        k: int,
        mode: str,
        base_dir: Path | None = None,
        strategies: list[str | None] | None = None,
    ) -> tuple[BuildSetting, ...]:
        """The builds of the ``[[engine]]`` blocks, each query setting once per listed
        filter strategy (``strategies`` of more than one: a query parameter of its own)."""
        strategies = strategies or [None]
        locate = self.locator.engine_key
        if blocks is None:
            raise self.fail(
                None, f"no [[engine]] tables: nothing to run (engines: {', '.join(engine_names())})"
            )
        if isinstance(blocks, dict):
            raise self.fail(
                self.locator.table("engine"),
                "write each engine as an [[engine]] table (double brackets)",
            )
        if not isinstance(blocks, list) or not blocks:
            raise self.fail(None, "'engine' must be a list of [[engine]] tables")
        builds: dict[str, tuple[str, dict, dict, dict[str, QuerySetting]]] = {}
        first_block: dict[str, int] = {}  # run id -> the block that gave it
        given_labels: dict[str, tuple[str, int]] = {}  # build key -> (label, block)
        for position, block in enumerate(blocks):
            if not isinstance(block, dict):
                raise self.fail(locate(position, "name"), "each [[engine]] must be a table")
            for key in block:
                if key not in ENGINE_KEYS:
                    raise self.fail(
                        locate(position, key),
                        f"unknown [[engine]] key {key!r} (known: {', '.join(LISTED_ENGINE_KEYS)})",
                    )
            name = block.get("name")
            if not isinstance(name, str):
                raise self.fail(
                    locate(position, "name"),
                    f'[[engine]] needs name = "<engine>" (engines: {", ".join(engine_names())})',
                )
            try:
                engine_class = get_engine(name)
            except ParamError:
                raise self.fail(
                    locate(position, "name"),
                    f"unknown engine {name!r} (known: {', '.join(engine_names())})",
                ) from None
            build_grid = self.grid(
                position, name, "build", block.get("build"), engine_class.build_specs
            )
            label = block.get("label")
            if label is not None:
                if not isinstance(label, str) or not label.strip():
                    raise self.fail(
                        locate(position, "label"),
                        f"engine {name!r}: label must be a non-empty string, e.g. "
                        'label = "my index"',
                    )
                resolved_grid = [
                    {**{p: spec.default for p, spec in engine_class.build_specs.items()}, **given}
                    for given in build_grid
                ]
                for resolved_build, text in zip(
                    resolved_grid,
                    block_labels(" ".join(label.split()), name, resolved_grid),
                    strict=True,
                ):
                    key = json.dumps([name, sorted(resolved_build.items())], default=str)
                    given_labels.setdefault(key, (text, position))
            policies = self.policy_files(position, name, block.get("policy"), k, base_dir)
            adapting = self.adapt_table(position, name, block.get("adapt"), mode)
            fitted: set[int] = set()
            for given in build_grid:
                resolved = {p: spec.default for p, spec in engine_class.build_specs.items()}
                resolved.update(given)
                try:  # may depend on the build (a faiss factory string is checked here)
                    query_specs = engine_class.query_specs(resolved)
                except ParamError as exc:
                    raise self.fail(locate(position, "build"), str(exc)) from None
                query_grid = self.grid(position, name, "query", block.get("query"), query_specs)
                key = json.dumps([name, sorted(resolved.items())], default=str)
                entry = builds.setdefault(key, (name, given, resolved, {}))
                for query_given, strategy in itertools.product(query_grid, strategies):
                    query = {p: spec.default for p, spec in query_specs.items()}
                    query.update(query_given)
                    if strategy is not None:  # a listed filter strategy: its own setting
                        query[FILTER_STRATEGY_PARAM] = strategy
                    run_id = make_run_id(name, resolved, query, k, mode)
                    earlier = first_block.setdefault(run_id, position)
                    if earlier != position:
                        raise self.fail(
                            locate(position, "name"),
                            f"[[engine]] block {position + 1} ({name}) repeats a setting of "
                            f"block {earlier + 1}: "
                            f"{_setting_text(resolved, query)}; remove the duplicate "
                            "(each setting is measured once)",
                        )
                    entry[3].setdefault(run_id, QuerySetting(run_id=run_id, params=query))
                if not policies and adapting is None:
                    continue
                effort = engine_class.effort_param_for(resolved)
                if effort is None:
                    key = "adapt" if adapting is not None else "policy"
                    raise self.fail(
                        locate(position, key),
                        f"engine {name!r} has no per-query effort parameter (it "
                        f"searches exactly): {key} needs an engine with one",
                    )
                settings = []
                for number, (policy, setting) in enumerate(policies):
                    if policy_fits_build(policy, name, resolved):
                        fitted.add(number)
                        settings.append(setting)
                if adapting is not None:
                    settings += adapt_settings(
                        adapting,
                        [
                            {**{p: spec.default for p, spec in query_specs.items()}, **q}.get(
                                effort
                            )
                            for q in query_grid
                        ],
                    )
                for setting in settings:
                    run_id = make_run_id(name, resolved, setting.key(), k, mode)
                    earlier = first_block.setdefault(run_id, position)
                    if earlier != position:
                        raise self.fail(
                            locate(position, "name"),
                            f"[[engine]] block {position + 1} ({name}) repeats a "
                            f"policy of block {earlier + 1}: "
                            f"{_setting_text(resolved, setting.describe())}",
                        )
                    entry[3].setdefault(
                        run_id,
                        QuerySetting(run_id=run_id, params=setting.describe(), policy=setting),
                    )
            for number, (policy, setting) in enumerate(policies):
                if number not in fitted:
                    raise self.fail(
                        locate(position, "policy"),
                        f"engine {name!r}: {setting.name} was trained for "
                        f"{describe_policy_index(policy)}, not an index this "
                        "[[engine]] builds",
                    )
        defaults = index_labels([(name, resolved) for name, _, resolved, _ in builds.values()])
        labels: dict[str, tuple[str, int | None]] = {
            key: given_labels.get(key, (default, None))
            for key, default in zip(builds, defaults, strict=True)
        }
        owner: dict[str, int | None] = {}
        for text, block in labels.values():
            if text in owner and (block is not None or owner[text] is not None):
                raise self.fail(
                    locate(block if block is not None else owner[text] or 0, "label"),
                    f"label {text!r} names two indexes of the sweep: give each "
                    "[[engine]] entry its own label",
                )
            owner[text] = block
        return tuple(
            BuildSetting(
                engine=name,
                params=given,
                resolved=resolved,
                queries=tuple(queries.values()),
                label=labels[key][0],
                labelled=labels[key][1] is not None,
            )
            for key, (name, given, resolved, queries) in builds.items()
        )


def _setting_text(build: dict[str, Any], query: dict[str, Any]) -> str:
    """``M=16 ef_construction=200 | ef=40`` (build | query params)."""

    def text(params: dict[str, Any]) -> str:
        return " ".join(f"{name}={value}" for name, value in params.items()) or "(defaults)"

    return f"{text(build)} | {text(query)}"


def parse_sweep(text: str, source: str = "sweep.toml", base_dir: Path | None = None) -> SweepSpec:
    """Parse and validate sweep TOML ``text``; ``source`` names it in error messages."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"{source}: invalid TOML: {exc}") from None
    reader = _Reader(source, text)
    for key in document:
        if key not in ("bench", "engine"):
            line = reader.locator.table(key) or reader.locator.table_key("", key)
            raise reader.fail(line, f"unknown top-level key {key!r} (use [bench] and [[engine]])")
    bench = reader.bench(document.get("bench"))
    listed = bench["filter_strategy"]
    builds = reader.engines(
        document.get("engine"),
        bench["k"],
        bench["mode"],
        base_dir,
        strategies=listed if len(listed) > 1 else [None],
    )
    return SweepSpec(
        source=source,
        text=text,
        dataset=bench["dataset"],
        k=bench["k"],
        runs=bench["runs"],
        mode=bench["mode"],
        builds=builds,
        timeout=bench.get("timeout"),
        queries=bench.get("queries"),
        groundtruth=bench.get("groundtruth"),
        metric=bench.get("metric"),
        base_dir=base_dir,
        recall_rule=bench["recall"],
        qps_tolerance=bench.get("qps_tolerance", DEFAULT_QPS_TOLERANCE),
        filter_strategy=listed[0],
    )


def load_sweep(path: str | Path | None) -> SweepSpec:
    """Read a sweep file (None: the built-in default sweep)."""
    if path is None:
        return parse_sweep(DEFAULT_SWEEP, DEFAULT_SWEEP_NAME)
    file_path = Path(path)
    if not file_path.is_file():
        problem = "is a folder" if file_path.is_dir() else "no such file"
        raise SweepError(f"{path}: {problem} (expected a sweep .toml file)")
    try:
        text = file_path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SweepError(f"{path}: not a UTF-8 text file") from None
    return parse_sweep(text, str(path), base_dir=file_path.resolve().parent)
