"""The names each plug point accepts, in one place: reward kinds, ensemble methods and trajectory
selectors. Dispatch, config validation and ``--help-config`` all read these registries.

An entry points at its builder as a ``'module:attribute'`` string, imported when first used, so
this module imports nothing of the library (the config can read it without an import cycle).
Besides the registered names, ``reward.function``, ``reward.shaper`` and ``risk.selector`` take
a user's ``module:attribute``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    name: str
    help: str
    target: str | None = None  # 'module:attribute' of the builder, or None (handled in place)


class Registry:
    def __init__(self, field: str, entries: list[Entry]):
        self.field = field
        self.entries = {e.name: e for e in entries}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def describe(self) -> str:
        """``'a (what a does), b (what b does)'`` for help texts."""
        return ", ".join(f"{e.name} ({e.help})" for e in self.entries.values())

    def get(self, name: str) -> Entry:
        if name not in self.entries:
            raise ValueError(f"{self.field} must be one of {', '.join(self.names)}, got {name!r}")
        return self.entries[name]

    def builder(self, name: str):
        """The callable registered for ``name`` (imported on first use)."""
        entry = self.get(name)
        if entry.target is None:
            raise ValueError(f"{self.field}={name} has no builder of its own")
        module, _, attr = entry.target.partition(":")
        return getattr(importlib.import_module(module), attr)


REWARD_KINDS = Registry("reward.kind", [
    Entry("vader", "VADER compound sentiment in [-1, 1]", "riskalign.rewards.build:vader"),
    Entry("non-toxicity", "1 - 2 p(offensive) from alt-profanity-check",
          "riskalign.rewards.build:non_toxicity"),
    Entry("hf", "a sequence classifier: reward.model, reward.label",
          "riskalign.rewards.build:classifier"),
    Entry("python", "reward.function=module:function", "riskalign.rewards.build:python"),
    Entry("ensemble", "a reward-model ensemble folder from `riskalign reward`",
          "riskalign.rewards.build:ensemble"),
])

ENSEMBLE_METHODS = Registry("reward.ensemble_method", [
    Entry("single", "one member's score, reward.member"),
    Entry("mean", "the member mean", "riskalign.rewards.aggregate:mean_reward"),
    Entry("min", "the worst member, per sample", "riskalign.rewards.aggregate:min_reward"),
    Entry("uwo", "mean - lam * variance", "riskalign.rewards.aggregate:uwo_reward"),
    Entry("adaptive", "the member mean; the variance sets a per-sample KL coefficient and "
                      "policy-loss weight"),
])

SELECTORS = Registry("risk.selector", [
    Entry("soft-risk", "RA-RLHF: the worst B0 trajectories, B0 on the soft-risk schedule; every "
                       "trajectory when risk.alpha = 1", "riskalign.risk.selection:soft_risk"),
    Entry("all", "every trajectory trains (standard PPO), whatever risk.alpha says",
          "riskalign.risk.selection:every_trajectory"),
])


def is_custom(value: str | None) -> bool:
    """A user's ``module:attribute`` rather than a registered name."""
    return bool(value) and ":" in value


__all__ = ["ENSEMBLE_METHODS", "Entry", "REWARD_KINDS", "Registry", "SELECTORS", "is_custom"]
