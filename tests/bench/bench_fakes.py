"""Fake engines for the runner tests: exact search that can fail, crash or hang on demand.

Not registered on import: tests register them with the ``fake_engines`` fixture, and the
benchmark worker registers them itself (the runner tells it where the class lives).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np

from annkit.engines.base import Engine, ParamSpec
from annkit.types import SearchResult

BEHAVIOURS = ("ok", "raise", "crash", "hang")
PAYLOAD = "fake.npy"


def act(behaviour: str, where: str) -> None:
    """Do what ``behaviour`` says: nothing, raise, die by SIGSEGV (a native crash), hang."""
    if behaviour == "raise":
        raise RuntimeError(f"boom in {where}")
    if behaviour == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    if behaviour == "hang":
        time.sleep(600)


class FakeEngine(Engine):
    """Exact euclidean search in numpy; build/search behave as their ``build``/``search``
    params say."""

    name = "fake"
    description = "exact search that fails on demand (tests only)"
    build_specs = {
        "build": ParamSpec(str, "ok", "ok | raise | crash | hang", choices=BEHAVIOURS),
        "copies": ParamSpec(int, 1, "distinguishes otherwise identical builds", minimum=1),
    }
    query_params = {
        "search": ParamSpec(str, "ok", "ok | raise | crash | hang", choices=BEHAVIOURS),
    }

    def build(self, base: np.ndarray, threads: int = 1) -> None:
        act(self.params["build"], "build")
        self._base = np.asarray(base, dtype=np.float32)
        self.count = len(self._base)

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        act(self.query["search"], "search")
        queries = np.asarray(queries, dtype=np.float32)
        distances = ((queries[:, None, :] - self._base[None, :, :]) ** 2).sum(axis=2)
        ids = np.argsort(distances, axis=1, kind="stable")[:, :k]
        found = np.sqrt(np.take_along_axis(distances, ids, axis=1))
        return SearchResult(ids=ids.astype(np.int64), distances=found.astype(np.float32))

    def save(self, directory: Path) -> list[str]:
        np.save(directory / PAYLOAD, self._base)
        return [PAYLOAD]

    @classmethod
    def load(cls, directory: Path, metric: str, dim: int, count: int, params: dict) -> Engine:
        engine = cls(metric, dim, **params)
        engine._base = np.load(directory / PAYLOAD)
        engine.count = count
        return engine


class SlowEffortEngine(FakeEngine):
    """Exact search with an effort knob that sleeps ``delay`` seconds per search call, so
    that training adaptive policies on it takes a while (time-limit tests)."""

    name = "fake-effort"
    description = "exact search with a slow effort parameter (tests only)"
    build_specs = {
        "delay": ParamSpec(float, 0.5, "seconds each search call sleeps", minimum=0),
    }
    query_params = {
        "effort": ParamSpec(int, 8, "does nothing but name the effort", minimum=1, effort=True),
    }

    def build(self, base: np.ndarray, threads: int = 1) -> None:
        self._base = np.asarray(base, dtype=np.float32)
        self.count = len(self._base)

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        time.sleep(float(self.params["delay"]))
        queries = np.asarray(queries, dtype=np.float32)
        distances = ((queries[:, None, :] - self._base[None, :, :]) ** 2).sum(axis=2)
        ids = np.argsort(distances, axis=1, kind="stable")[:, :k]
        found = np.sqrt(np.take_along_axis(distances, ids, axis=1))
        return SearchResult(ids=ids.astype(np.int64), distances=found.astype(np.float32))
