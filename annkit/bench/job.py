"""What the runner asks a worker to do: one build and its pending query settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from annkit.bench.policies import PolicySetting
from annkit.measure import Measure

#: a concurrency level: (search threads, clients or None)
Level = tuple[int, "int | None"]


@dataclass(frozen=True)
class WorkerJob:
    """Build (or load from ``index_dir``) the ``engine`` index with build ``params`` and
    measure each of ``queries`` ((run id, query params), in order) on it as ``measure``
    says; a run id in ``concurrency`` at its (search threads, clients) level, one in
    ``policies`` with its per-query effort policy. Sent to the worker process pickled."""

    engine: str
    params: dict[str, Any]
    index_dir: str
    fingerprint: str
    measure: Measure
    queries: tuple[tuple[str, dict[str, Any]], ...]
    rebuild: bool = False
    memory_check: bool = True
    threads: int = 1
    concurrency: dict[str, Level] = field(default_factory=dict)
    policies: dict[str, PolicySetting] = field(default_factory=dict)

    def measure_of(self, run_id: str) -> Measure:
        """How the run ``run_id`` is measured: the job's measure at the run's concurrency."""
        threads, clients = self.concurrency.get(run_id, (1, None))
        if (threads, clients) == (self.measure.search_threads, self.measure.clients):
            return self.measure
        return self.measure.but(search_threads=threads, clients=clients)
