"""Pareto frontiers of (recall, QPS) points: both maximised."""

from __future__ import annotations

import math
from collections.abc import Sequence


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """True when ``a`` is at least as good as ``b`` on both axes and better on one."""
    return a[0] >= b[0] and a[1] >= b[1] and (a[0] > b[0] or a[1] > b[1])


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point dominates, ordered by the first coordinate
    ascending (the frontier from fast/low recall to slow/high recall).

    Equal points do not dominate each other, so duplicates are all kept. Points with a
    NaN coordinate are never on the frontier. O(n log n).
    """
    valid = [i for i, (x, y) in enumerate(points) if not (math.isnan(x) or math.isnan(y))]
    order = sorted(valid, key=lambda i: (-points[i][0], -points[i][1]))
    front: list[int] = []
    best_y_beyond = -math.inf  # best y among points with a strictly larger x
    position = 0
    while position < len(order):
        x = points[order[position]][0]
        group = []
        while position < len(order) and points[order[position]][0] == x:
            group.append(order[position])
            position += 1
        group_best = points[group[0]][1]
        for index in group:
            y = points[index][1]
            if y == group_best and y > best_y_beyond:
                front.append(index)
        best_y_beyond = max(best_y_beyond, group_best)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))
