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
    """The trainer's ``select`` hook: keep the B0 lowest-ranked trajectories of each batch.

    ``rank_by`` sets the ranking:
    - 'kl_return': sum_t (r_t - beta kl_t), the per-token rewards the trainer built (the paper's);
    - 'score': the raw task score;
    - 'gain': the score minus the prompt's own score (``prompt_scores(prompts) -> [B]``, e.g. a
      ``rewards.PromptScoreCache``), so a trajectory ranks low for doing badly on its prompt,
      not for starting from a hard one.
    ``stats`` holds B0 and the threshold of the latest call, for logging. With several
    processes (``dist``, set by the trainer) the ranks of the whole batch are gathered, B0 and
    the tail are global, and each process gets back the indices of its own trajectories in it.
    """

    def __init__(self, alpha: float, warm_start: int, rho: float, rank_by: str,
                 total_iterations: int, prompt_scores=None):
        if rank_by == "gain" and prompt_scores is None:
            raise ValueError("rank_by='gain' needs prompt_scores")
        self.alpha, self.warm_start, self.rho = alpha, warm_start, rho
        self.rank_by, self.total, self.prompt_scores = rank_by, total_iterations, prompt_scores
        self.stats: dict[str, float] = {}
        self.dist = None

    def ranks(self, rollout, rewards: torch.Tensor) -> torch.Tensor:
        """This process's ranking values [B] (lowest trains first)."""
        if self.rank_by == "kl_return":
            return rewards.sum(1)
        if self.rank_by == "score":
            return rollout.scores
        start = self.prompt_scores(rollout.prompts).to(rollout.scores.device)
        return rollout.scores - start

    def __call__(self, iteration: int, rollout, rewards: torch.Tensor) -> torch.Tensor:
        local = self.ranks(rollout, rewards)
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
