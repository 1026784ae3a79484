"""Reward sources. Each maps (prompts, completions) to a float tensor [B]."""

from __future__ import annotations

from ..config import RewardConfig
from ..registry import REWARD_KINDS
from .base import (PromptScoreCache, RewardError, RewardSource, TextReward, checked_scores,
                   prompt_scores)
from .shaping import (EnsembleShaper, FunctionShaper, PlainShaper, RewardShaper, ShapedReward,
                      as_shaper, load_shaper)
from .sources import Ensemble, WeightedSum

def build_reward(cfg: RewardConfig, default_kind: str = "vader") -> RewardSource:
    """Build the reward source a config names (``cfg.kind`` or the task's default), through the
    ``registry.REWARD_KINDS`` registry."""
    return REWARD_KINDS.builder(cfg.kind or default_kind)(cfg)


def build_shaper(cfg: RewardConfig, default_kind: str = "vader", kl_coef: float = 0.05
                 ) -> RewardShaper:
    """The trainer's reward entry point: the user's shaper (``reward.shaper=module:name``), an
    ensemble with its method, or a plain source. ``kl_coef``: the run's initial KL coefficient
    (the adaptive method's lambda)."""
    if cfg.shaper:
        return load_shaper(cfg.shaper)
    source = build_reward(cfg, default_kind)
    if (cfg.kind or default_kind) == "ensemble":
        return EnsembleShaper(source, cfg.ensemble_method, cfg.lam, cfg.member, kl_coef)
    return PlainShaper(source)


__all__ = ["Ensemble", "EnsembleShaper", "FunctionShaper", "PlainShaper", "PromptScoreCache",
           "RewardError", "RewardShaper", "RewardSource", "ShapedReward", "TextReward",
           "WeightedSum", "as_shaper", "build_reward", "build_shaper", "checked_scores",
           "load_shaper", "prompt_scores"]
