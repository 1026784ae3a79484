"""Reward sources built from plain Python callables ``(prompts, completions) -> numbers``.

* ``WeightedSum``: sum_k w_k f_k(prompts, completions), one reward (as TRL sums reward_funcs);
* ``Ensemble``: the callables as ensemble members, so that the ensemble methods (mean, min, uwo,
  adaptive) can combine them; their scores are used as given (not standardised).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from .base import checked_scores

RewardFn = Callable[[list[str], list[str]], Sequence[float]]


class WeightedSum:
    """sum_k w_k f_k(prompts, completions) over reward callables (weights default to 1)."""

    def __init__(self, functions: Sequence[RewardFn], weights: Sequence[float] | None = None):
        if not functions:
            raise ValueError("reward: give at least one reward function")
        weights = [1.0] * len(functions) if weights is None else list(weights)
        if len(weights) != len(functions):
            raise ValueError(f"reward weights: {len(weights)} weights for {len(functions)} "
                             f"reward functions")
        self.functions, self.weights = list(functions), weights

    def __call__(self, prompts: list[str], completions: list[str]) -> torch.Tensor:
        total = torch.zeros(len(prompts))
        for w, f in zip(self.weights, self.functions):
            total += w * checked_scores(f, prompts, completions)
        return total


class Ensemble:
    """Member scores [M, B] from M callables; ``__call__`` is their mean [B]."""

    def __init__(self, functions: Sequence[RewardFn]):
        if not functions:
            raise ValueError("Ensemble: give at least one member")
        self.functions = list(functions)

    def __len__(self) -> int:
        return len(self.functions)

    def members(self, prompts: list[str], completions: list[str]) -> torch.Tensor:
        return torch.stack([checked_scores(f, prompts, completions) for f in self.functions])

    def __call__(self, prompts: list[str], completions: list[str]) -> torch.Tensor:
        return self.members(prompts, completions).mean(0)
