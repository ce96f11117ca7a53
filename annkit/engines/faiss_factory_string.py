"""Reading a faiss ``index_factory`` string ("HNSW32,Flat", "IVF1024,PQ48x4fs,RFlat",
"OPQ48_192,IVF4096_HNSW32,PQ48", ...) without building it.

:func:`parse_factory` gives the parts the query knobs depend on (:class:`FactoryShape`: an
inverted file, an HNSW graph or another kind; an HNSW coarse quantizer; a refine stage) and
refuses sizes faiss would abort on; :func:`factory_query_specs` names the knobs;
:func:`factory_nlist` reads the IVF list count; :func:`check_factory_syntax`,
:func:`check_factory` and :func:`check_training_size` refuse, as one-line ParamErrors, what
faiss would reject at build time.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

from annkit.engines.base import ParamSpec
from annkit.engines.faiss_common import faiss_module
from annkit.errors import ParamError

_TRANSFORM = re.compile(
    r"^(OPQ(\d+)(?:_(\d+))?|PCAW?R?(\d+)|RR(\d+)|L2norm|Pad(\d+)|ITQ(\d*)"
    r"(?:_(\d+))?)$"
)
_MAX_TRANSFORM_DIM = 65_536
_REFINE = re.compile(r"^(RFlat|Refine\((.+)\))$")


@dataclass(frozen=True)
class FactoryShape:
    """What a factory string builds, as far as the query knobs are concerned."""

    kind: str  # "ivf", "hnsw" or "other" (exhaustive scans and the rest)
    hnsw_quantizer: bool
    refine: bool


def _split_top(factory: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in factory:
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current += char
    parts.append(current)
    return [part.strip() for part in parts]


def parse_factory(factory: str) -> FactoryShape:
    """Read the structure of a factory string (raises ParamError on an empty component and on
    numbers faiss would abort on, such as ``HNSW0`` or ``IVF0``)."""
    text = str(factory).strip()
    parts = _split_top(text)
    if not text or any(not part for part in parts):
        raise ParamError(f"faiss: index_factory string {factory!r} has an empty component")
    for match in re.finditer(r"HNSW(\d+)", text):
        if not 2 <= int(match.group(1)) <= 2048:
            raise ParamError(
                f"faiss: HNSW{match.group(1)} in {factory!r}: the graph degree "
                "must be between 2 and 2048"
            )
    for match in re.finditer(r"(?<![\d.])0+(?![\d.])", text):  # faiss aborts on HNSW0, PQ8x0..
        token = re.search(r"[A-Za-z_+(]*[\dx_]*$", text[: match.end()])
        raise ParamError(
            f"faiss: {token.group(0) if token else '0'} in {factory!r}: sizes must be at least 1"
        )
    for match in re.finditer(r"(?:OPQ\d+_|PCAW?R?|RR|Pad|ITQ_?)(\d+)", text):
        if int(match.group(1)) > _MAX_TRANSFORM_DIM:
            raise ParamError(
                f"faiss: {match.group(0)} in {factory!r}: at most "
                f"{_MAX_TRANSFORM_DIM} output dimensions"
            )
    for match in re.finditer(r"PQ\d+x(\d+)", text):
        if int(match.group(1)) > 24:
            raise ParamError(f"faiss: {match.group(0)} in {factory!r}: at most 24 bits per code")
    refine = bool(_REFINE.match(parts[-1])) and len(parts) > 1
    main = parts[:-1] if refine else parts
    while len(main) > 1 and _TRANSFORM.match(main[0]):
        main = main[1:]
    head = main[0]
    if re.match(r"^(IVF\d+|IMI2x\d+)", head):
        return FactoryShape("ivf", "_HNSW" in head, refine)
    if re.match(r"^HNSW\d+", head):
        return FactoryShape("hnsw", False, refine)
    return FactoryShape("other", False, refine)


def _effective_dim(factory: str, dim: int) -> int:
    """The dimension after the leading transforms (OPQ M_D, PCA D, RR D, Pad D)."""
    for part in _split_top(str(factory)):
        match = _TRANSFORM.match(part)
        if not match:
            break
        out = match.group(3) or match.group(4) or match.group(5) or match.group(6)
        if match.group(2) and dim % int(match.group(2)) and not match.group(3):
            raise ParamError(f"faiss: {part} needs {match.group(2)} to divide the dimension {dim}")
        if out:
            if match.group(4) and int(out) > dim:
                raise ParamError(
                    f"faiss: {part} in {factory!r}: PCA cannot output {out} dimensions from {dim}"
                )
            if match.group(2) and int(out) % int(match.group(2)):
                raise ParamError(f"faiss: {part}: {match.group(2)} must divide {out}")
            dim = int(out)
    return dim


def _check_pq(factory: str, inner: int) -> None:
    """PQ sub-quantizers must divide the dimension they code (after the transforms)."""
    main = [part for part in _split_top(factory) if not _TRANSFORM.match(part)]
    for part in main[:-1] if main and _REFINE.match(main[-1]) else main:
        for match in re.finditer(r"(?<![A-Za-z])PQ(\d+)", part):
            m = int(match.group(1))
            if m < 1 or inner % m:
                raise ParamError(
                    f"faiss: {match.group(0)} in {factory!r}: {m} sub-quantizers "
                    f"must divide the dimension {inner}"
                )


@functools.lru_cache(maxsize=256)
def check_factory_syntax(factory: str) -> None:
    """Refuse a factory string faiss cannot parse, whatever the dimension: faiss' parser is
    tried at a dimension every number in the string divides (its RuntimeError becomes a
    one-line ParamError). The dimension-dependent checks wait for :func:`check_factory`."""
    faiss = faiss_module()
    parse_factory(factory)
    numbers = [int(number) for number in re.findall(r"\d+", factory)]
    trial = math.lcm(*numbers) if numbers else 8
    if trial > _MAX_TRANSFORM_DIM:
        return  # no small dimension fits every number: faiss parses it at build time
    _check_pq(factory, _effective_dim(factory, trial))  # a transform may fix the dimension
    try:
        faiss.index_factory(trial, factory, faiss.METRIC_L2)
    except RuntimeError as exc:
        raise ParamError(
            f"faiss rejects index_factory string {factory!r}: {faiss_reason(exc)}"
        ) from None


def check_factory(factory: str, dim: int) -> None:
    """Refuse what faiss would reject, or abort on, for vectors of ``dim`` dimensions:
    PQ sub-quantizers that do not divide the dimension, then anything faiss' own parser
    refuses (its RuntimeError becomes a one-line ParamError)."""
    faiss = faiss_module()
    parse_factory(factory)
    _check_pq(factory, _effective_dim(factory, dim))
    try:
        faiss.index_factory(dim, factory, faiss.METRIC_L2)
    except RuntimeError as exc:
        raise ParamError(
            f"faiss rejects index_factory string {factory!r} for dimension {dim}: "
            f"{faiss_reason(exc)}"
        ) from None


def faiss_reason(exc: BaseException) -> str:
    """The human part of a faiss exception message, on one line."""
    text = " ".join(str(exc).split())
    match = re.search(r" at \S+:\d+: (?:Error: '.*?' failed: )?(.*)$", text)
    return (match.group(1) if match else text)[:200] or type(exc).__name__


def factory_query_specs(factory: str) -> dict[str, ParamSpec]:
    """The query parameters of an index built from ``factory``."""
    shape = parse_factory(factory)
    specs: dict[str, ParamSpec] = {}
    if shape.kind == "ivf":
        specs["nprobe"] = ParamSpec(
            int, 16, "inverted lists visited per query", minimum=1, effort=True
        )
        if shape.hnsw_quantizer:
            specs["quantizer_efSearch"] = ParamSpec(
                int, 64, "candidate list of the HNSW coarse quantizer", minimum=1
            )
    elif shape.kind == "hnsw":
        specs["efSearch"] = ParamSpec(
            int, 64, "candidate list size while searching", minimum=1, effort=True
        )
    if shape.refine:
        specs["k_factor"] = ParamSpec(
            float, 1.0, "re-rank k_factor*k candidates exactly", minimum=1.0, maximum=1000.0
        )
    return specs


def factory_nlist(factory: str) -> int:
    """The number of inverted lists the string asks for (``IVF<n>``), 1 when none."""
    match = re.search(r"IVF(\d+)", factory)
    return int(match.group(1)) if match else 1


def check_training_size(factory: str, count: int, train: int) -> None:
    """Refuse a training set of ``train`` vectors (of ``count`` base vectors) too small for
    the factory: fewer than its IVF lists or than a PQ codebook's ``2**bits`` entries."""
    for match in re.finditer(r"IVF(\d+)", factory):
        if int(match.group(1)) > train:
            raise ParamError(
                f"faiss: {match.group(0)} needs at least {match.group(1)} "
                f"training vectors, have {train} (of {count} base vectors)"
            )
    for match in re.finditer(r"(?<![A-Za-z])PQ\d+x(\d+)", factory):
        if 2 ** int(match.group(1)) > train:
            raise ParamError(
                f"faiss: {match.group(0)} needs at least "
                f"{2 ** int(match.group(1))} training vectors, have {train}"
            )
