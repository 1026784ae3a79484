"""Tail selection: which trajectories of a batch train under RA-RLHF."""

from __future__ import annotations

import torch

from .schedule import soft_risk_batch_size


def select_tail(returns: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` lowest returns [B] (ties: earlier index first), in ascending index
    order, so that keeping all B gives ``arange(B)`` and the update matches standard PPO."""
    if not 1 <= k <= len(returns):
        raise ValueError(f"k must be in [1, {len(returns)}], got {k}")
    order = torch.sort(returns, stable=True).indices
    return torch.sort(order[:k]).values


class SoftRiskSelector:
    """The trainer's ``select`` hook: keep the B0 lowest-return trajectories of each batch.

    rank_by='kl_return' ranks by sum_t (r_t - beta kl_t), the per-token rewards the trainer
    built (the paper's choice); rank_by='score' by the raw task score. ``stats`` holds B0 and
    the threshold return of the latest call, for logging. With several processes (``dist``,
    set by the trainer) the returns of the whole batch are gathered, B0 and the tail are
    global, and each process gets back the indices of its own trajectories in the tail.
    """

    def __init__(self, alpha: float, warm_start: int, rho: float, rank_by: str,
                 total_iterations: int):
        self.alpha, self.warm_start, self.rho = alpha, warm_start, rho
        self.rank_by, self.total = rank_by, total_iterations
        self.stats: dict[str, float] = {}
        self.dist = None

    def __call__(self, iteration: int, rollout, rewards: torch.Tensor) -> torch.Tensor:
        local = rewards.sum(1) if self.rank_by == "kl_return" else rollout.scores
        returns = local if self.dist is None else self.dist.gather(local)
        b0 = soft_risk_batch_size(iteration, self.total, len(returns), self.alpha,
                                  self.warm_start, self.rho)
        keep = select_tail(returns, b0)
        self.stats = {"risk_b0": b0, "risk_threshold": returns[keep].max().item()}
        if self.dist is None or self.dist.world == 1:
            return keep
        start = self.dist.rank * len(local)
        mine = keep[(keep >= start) & (keep < start + len(local))]
        return mine - start
