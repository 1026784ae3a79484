"""Combining an ensemble's member scores [M, B] into rewards, and the adaptive per-sample weights.

* ``mean``: (1/M) sum_m s_m;
* ``min``: min_m s_m (worst-case optimisation, Coste et al.);
* ``uwo``: mean - lambda * var, with the population variance (ddof 0) as the RLAIF report's
  formula writes it. The report's code used the standard deviation instead, and Coste et al.'s
  UWO uses ddof 1; with M members, ddof 1 is M / (M - 1) times the value used here.

The adaptive uncertainty-aware objective (per sample i, member mean mu_i, member variance s2_i,
b fixed from the first batch) is E[ b / (b + s2_i) * (mu_i - s2_i / b * KL_i) ]:
``uncertainty_weights`` returns its two per-sample factors. As in the paper's code (seed 003),
b = E[s2 over the first batch] / lambda with lambda the KL coefficient the other methods use,
"so that the regularization coefficient E[s2]/b = lambda during the first batch".
"""

from __future__ import annotations

import torch

from ..registry import ENSEMBLE_METHODS


class EnsembleError(ValueError):
    """Ensemble scores or settings that cannot be combined. The message names the cause."""


def check_member_scores(scores: torch.Tensor) -> None:
    if scores.dim() != 2:
        raise EnsembleError(f"ensemble scores must have shape [members, batch], got "
                            f"{tuple(scores.shape)}")
    bad = (~torch.isfinite(scores)).nonzero()
    if len(bad):
        m, i = bad[0].tolist()
        raise EnsembleError(f"ensemble member {m} scored sample {i} as {scores[m, i].item()}")


def member_variance(scores: torch.Tensor) -> torch.Tensor:
    """Population variance over members (ddof 0): [M, B] -> [B]. Needs M >= 2."""
    check_member_scores(scores)
    if scores.shape[0] < 2:
        raise EnsembleError("the variance over ensemble members needs at least 2 members, got 1")
    return scores.var(dim=0, unbiased=False)


def mean_reward(scores: torch.Tensor, lam: float) -> torch.Tensor:
    return scores.mean(0)


def min_reward(scores: torch.Tensor, lam: float) -> torch.Tensor:
    return scores.min(0).values


def uwo_reward(scores: torch.Tensor, lam: float) -> torch.Tensor:
    return scores.mean(0) - lam * member_variance(scores)


def aggregate_rewards(scores: torch.Tensor, method: str, lam: float = 0.5) -> torch.Tensor:
    """Member scores [M, B] -> one reward per sample [B], for the ensemble methods registered
    with a combining function (mean, min, uwo)."""
    check_member_scores(scores)
    try:
        combine = ENSEMBLE_METHODS.builder(method)
    except ValueError as e:
        raise EnsembleError(str(e)) from None
    return combine(scores, lam)


def uncertainty_weights(variance: torch.Tensor, b: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample (scale, kl_coef) = (b / (b + s2), s2 / b) for member variances s2 [B]."""
    if not b > 0:
        raise EnsembleError(f"the uncertainty scale b must be > 0, got {b}")
    return b / (b + variance), variance / b


def first_batch_scale(variance: torch.Tensor, kl_coef: float) -> float:
    """b = mean(s2 over the first batch) / lambda, lambda = the KL coefficient (ppo.init_kl_coef).
    A zero mean variance (members agree exactly) would make b zero and every KL coefficient
    infinite, so it is an error."""
    if not kl_coef > 0:
        raise EnsembleError(f"ppo.init_kl_coef must be > 0 for the adaptive method (b = mean "
                            f"variance / KL coefficient), got {kl_coef}")
    b = variance.mean().item() / kl_coef
    if not b > 0:
        raise EnsembleError("ensemble members agree exactly on the first batch (variance 0), so "
                            "b = mean variance / lambda is 0; use members trained with different "
                            "seeds or another ensemble method")
    return b


__all__ = ["EnsembleError", "aggregate_rewards", "check_member_scores", "first_batch_scale",
           "member_variance", "uncertainty_weights"]
