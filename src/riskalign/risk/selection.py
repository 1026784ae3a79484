"""Trajectory selection, the trainer's second plug point: which trajectories of a batch train.

A selector is any callable

    select(iteration, rollout, rewards, dist) -> (keep, stats)

with ``iteration`` counted from 1, ``rollout`` this process's ``ppo.rollout.Rollout`` (prompts,
scores, ...), ``rewards`` its per-token KL-penalised rewards [B, T], ``dist`` the trainer's
``ppo.distributed.Dist`` (world size 1 in a single process); it returns the indices of this
process's trajectories that train (LongTensor, ascending) and a dict of numbers to log.
``SoftRiskSelector`` is RA-RLHF's; ``risk.selector`` in the config names a registered selector
(``registry.SELECTORS``) or a user's ``module:name``.
"""

from __future__ import annotations

from typing import Protocol

import torch

from ..config import ConfigError, RunConfig
from ..ppo.trainer import total_iterations
from ..rewards import PromptScoreCache
from ..rewards.shaping import PlainShaper, as_shaper
from .schedule import soft_risk_batch_size


class Selector(Protocol):
    """``select(iteration, rollout, rewards, dist) -> (keep, stats)``: see the module
    docstring."""

    def __call__(self, iteration: int, rollout, rewards: torch.Tensor, dist
                 ) -> tuple[torch.Tensor, dict]: ...


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
    Its stats are B0 and the threshold. With several processes the ranks of the whole batch
    are gathered, B0 and the tail are global, and each process gets back the indices of its
    own trajectories in it.
    """

    def __init__(self, alpha: float, warm_start: int, rho: float, rank_by: str,
                 total_iterations: int, prompt_scores=None):
        if rank_by == "gain" and prompt_scores is None:
            raise ValueError("rank_by='gain' needs prompt_scores")
        self.alpha, self.warm_start, self.rho = alpha, warm_start, rho
        self.rank_by, self.total, self.prompt_scores = rank_by, total_iterations, prompt_scores

    def ranks(self, rollout, rewards: torch.Tensor) -> torch.Tensor:
        """This process's ranking values [B] (lowest trains first)."""
        if self.rank_by == "kl_return":
            return rewards.sum(1)
        if self.rank_by == "score":
            return rollout.scores
        start = self.prompt_scores(rollout.prompts).to(rollout.scores.device)
        return rollout.scores - start

    def __call__(self, iteration: int, rollout, rewards: torch.Tensor, dist=None
                 ) -> tuple[torch.Tensor, dict]:
        local = self.ranks(rollout, rewards)
        several = dist is not None and dist.world > 1
        returns = dist.gather(local) if several else local
        b0 = soft_risk_batch_size(iteration, self.total, len(returns), self.alpha,
                                  self.warm_start, self.rho)
        keep = select_tail(returns, b0)
        stats = {"risk_b0": b0, "risk_threshold": returns[keep].max().item()}
        if not several:
            return keep, stats
        start = dist.rank * len(local)
        mine = keep[(keep >= start) & (keep < start + len(local))]
        return mine - start, stats


def every_trajectory(cfg: RunConfig, n_prompts: int, reward=None) -> None:
    """``risk.selector=all``: no selection, every trajectory trains."""
    return None


def soft_risk(cfg: RunConfig, n_prompts: int, reward=None) -> SoftRiskSelector | None:
    """``risk.selector=soft-risk``: the RA-RLHF tail selector the config asks for (None when
    risk.alpha = 1); ``reward`` scores the prompts alone when risk.rank_by = 'gain'."""
    if cfg.risk.alpha >= 1:
        return None
    r = cfg.risk
    total = total_iterations(cfg, n_prompts)
    if r.warm_start >= total:
        print(f"warning: risk.warm_start ({r.warm_start}) >= the run's {total} iterations: the "
              f"soft-risk schedule never starts, so this run trains as plain RLHF")
    starts = None
    if r.rank_by == "gain":
        if reward is None or not isinstance(as_shaper(reward), PlainShaper):
            raise ConfigError("risk.rank_by='gain' needs a plain reward source (the prompt alone "
                              "is scored by it, as the completions are); with an ensemble or "
                              "RLAIF rank by kl_return or score")
        starts = PromptScoreCache(as_shaper(reward).source)
    return SoftRiskSelector(r.alpha, r.warm_start, r.rho, r.rank_by, total, starts)


def build_selector(cfg: RunConfig, n_prompts: int, reward=None):
    """The selector ``risk.selector`` names: a registered one, or the user's ``module:name``
    (used as is; a class is built with no arguments). None: every trajectory trains."""
    from ..registry import SELECTORS, is_custom

    if is_custom(cfg.risk.selector):
        from ..rewards.python_fn import import_function

        obj = import_function(cfg.risk.selector, "risk.selector")
        if not isinstance(obj, type):
            return obj
        try:
            return obj()
        except Exception as e:
            raise ValueError(f"risk.selector: {cfg.risk.selector}() raised {type(e).__name__}: "
                             f"{e} (a class named here is built with no arguments)") from None
    return SELECTORS.builder(cfg.risk.selector)(cfg, n_prompts, reward)
