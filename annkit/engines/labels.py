"""Index labels: one short name per index (an engine and its build params), shared by sweep
files, reports, plots and ``tune``.

The rule (:func:`index_labels`): the engine's name, then the build params whose values differ
among that engine's indexes, in the order the engine declares them, as ``NAME=VALUE``; the
engine's first build parameter, when a string (an index kind, such as a faiss factory
string), as its bare value. An engine with
one index is just its name: ``hnsw``; two builds give ``hnsw M=16`` / ``hnsw M=32``, two
factory strings ``faiss HNSW32,Flat`` / ``faiss IVF1024,PQ192x4fs,RFlat``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

#: how a data-derived value (None: resolved at build time) reads when it tells two
#: indexes apart
AUTO = "auto"


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _text(name: str, value: Any, first: bool) -> str:
    shown = AUTO if value is None else value
    if isinstance(value, float) and value.is_integer():
        shown = int(value)
    if first and isinstance(value, str):
        return value
    return f"{name}={shown}"


def index_labels(
    indexes: Sequence[tuple[str, Mapping[str, Any]]], *, separate: bool = True
) -> list[str]:
    """The label of each ``(engine, build params)`` of ``indexes``, in order (see the module
    doc). A None value (data-derived, or a failed build's unresolved one) neither counts as
    differing nor is shown, so a failed run of an index is named like its measured runs.
    With ``separate``, distinct indexes of one engine that still share a label (they
    differ only where one says None) also show those params, None as ``NAME=auto``."""
    seen: dict[tuple[str, str], set[str]] = {}
    for engine, params in indexes:
        for name, value in params.items():
            if value is not None:
                seen.setdefault((engine, name), set()).add(_key(value))
    shown = [
        [
            name
            for name, value in params.items()
            if value is not None and len(seen[(engine, name)]) > 1
        ]
        for engine, params in indexes
    ]
    if separate:
        groups: dict[str, list[int]] = {}
        for position, (engine, params) in enumerate(indexes):
            text = _key([engine, [(name, params[name]) for name in shown[position]]])
            groups.setdefault(text, []).append(position)
        for members in groups.values():
            if len({_key(dict(indexes[i][1])) for i in members}) < 2:
                continue  # one index (or several records of it)
            every = dict.fromkeys(name for i in members for name in indexes[i][1])
            for name in every:
                if len({_key(indexes[i][1].get(name)) for i in members}) > 1:
                    for i in members:
                        if name not in shown[i]:
                            shown[i].append(name)
    labels = []
    for (engine, params), names in zip(indexes, shown, strict=True):
        order = _spec_order(engine) or list(params)
        parts = [engine]
        for name in sorted(names, key=lambda n: order.index(n) if n in order else len(order)):
            parts.append(_text(name, params.get(name), bool(order) and order[0] == name))
        labels.append(" ".join(parts))
    return labels


def _spec_order(engine: str) -> list[str]:
    """The engine's build params in the order it declares them ([] for an engine not
    registered here: the params' own order is used)."""
    from annkit.engines.base import get_engine

    try:
        return list(get_engine(engine).build_specs)
    except Exception:  # noqa: BLE001 - an unknown or broken plugin: fall back to the records
        return []


def block_labels(label: str, engine: str, builds: Sequence[Mapping[str, Any]]) -> list[str]:
    """The labels of the builds of one sweep entry named ``label``: ``label`` itself for one
    build; for several, ``label`` then the params that differ among them (``mine M=8``,
    ``mine M=16``), so each index keeps a series of its own."""
    if len(builds) < 2:
        return [label] * len(builds)
    own = index_labels([(engine, params) for params in builds])
    return [f"{label}{text[len(engine) :]}" for text in own]
