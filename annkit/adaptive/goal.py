"""What calibration aims at on the training queries (:class:`Goal`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from annkit.adaptive.table import EffortTable

#: "equal work" as the comparisons define it: a work-matched policy may use 2% more
EQUAL_WORK = 0.02


@dataclass(frozen=True)
class Goal:
    """What calibration aims at on the training queries: ``recall`` (least mean work with
    mean recall >= value), ``budget`` (best p5 then mean recall with mean work <= value),
    or, measured on the training queries for uniform effort at the grid value ``value``:
    ``uniform-recall`` (its mean recall and, for learned policies, its p5 recall) or
    ``uniform-budget`` (its mean work, within EQUAL_WORK like the comparisons)."""

    kind: str
    value: float

    def resolve(self, table: EffortTable, rows: np.ndarray) -> tuple[float | None, float | None]:
        """(recall target, work budget) on the training ``rows``; one of them is None."""
        if self.kind == "recall":
            return self.value, None
        if self.kind == "budget":
            return None, self.value
        column = table.grid.index(int(self.value))
        if self.kind == "uniform-recall":
            return float(table.recall[rows, column].mean()), None
        return None, float(table.cost()[rows, column].mean()) * (1.0 + EQUAL_WORK)

    def p5_floor(self, table: EffortTable, rows: np.ndarray) -> float | None:
        """``uniform-recall``: the uniform setting's p5 recall on the training ``rows``."""
        if self.kind != "uniform-recall":
            return None
        column = table.grid.index(int(self.value))
        return float(np.percentile(table.recall[rows, column], 5.0))

    def label(self) -> str:
        if self.kind in ("recall", "budget"):
            return f"{self.kind} {self.value:g}"
        return f"{self.kind} at {int(self.value)}"
