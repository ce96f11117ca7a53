"""Tail rescue: per-query effort policies (learned and a simple rule), the per-query effort
search they run through the ordinary engine interface, and their checksummed files."""

from annkit.adaptive.folds import fold_assignment
from annkit.adaptive.goal import Goal
from annkit.adaptive.policy import (
    AdaptiveResult,
    Policy,
    PolicyError,
    adaptive_search,
    check_policy_index,
    load_policy,
    save_policy,
)
from annkit.adaptive.run import AdaptReport, adapt
from annkit.adaptive.search import search_with_efforts
from annkit.adaptive.train import AdaptConfig

__all__ = [
    "AdaptConfig",
    "AdaptReport",
    "AdaptiveResult",
    "Goal",
    "Policy",
    "PolicyError",
    "adapt",
    "adaptive_search",
    "check_policy_index",
    "fold_assignment",
    "load_policy",
    "save_policy",
    "search_with_efforts",
]
