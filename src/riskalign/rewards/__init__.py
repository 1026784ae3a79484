"""Reward sources. Each maps (prompts, completions) to a float tensor [B]."""

from __future__ import annotations

from ..config import RewardConfig
from .base import (PromptScoreCache, RewardError, RewardSource, TextReward, checked_scores,
                   prompt_scores)

KINDS = ("vader", "non-toxicity", "hf", "python", "ensemble")


def build_reward(cfg: RewardConfig, default_kind: str = "vader") -> RewardSource:
    """Build the reward source a config names (``cfg.kind`` or the task's default)."""
    kind = cfg.kind or default_kind
    if kind == "vader":
        from .lexicon import VaderReward

        return VaderReward(cfg.target, cfg.sign)
    if kind == "non-toxicity":
        from .lexicon import NonToxicityReward

        return NonToxicityReward(cfg.target, cfg.sign)
    if kind == "hf":
        from .classifier import ClassifierReward

        return ClassifierReward(cfg.model, cfg.label, cfg.target, cfg.sign, cfg.batch_size)
    if kind == "python":
        from .python_fn import PythonReward

        return PythonReward(cfg.function, cfg.sign)
    if kind == "ensemble":
        from .ensemble import EnsembleReward

        return EnsembleReward(cfg.model, cfg.target, cfg.batch_size)
    raise ValueError(f"reward.kind must be one of {', '.join(KINDS)}, got {kind!r}")


def build_shaper(cfg: RewardConfig, default_kind: str = "vader", kl_coef: float = 0.05):
    """The trainer's reward entry point: an ensemble with its method, or a plain source.
    ``kl_coef``: the run's initial KL coefficient (the adaptive method's lambda)."""
    from .shaping import EnsembleShaper, PlainShaper

    source = build_reward(cfg, default_kind)
    if (cfg.kind or default_kind) == "ensemble":
        return EnsembleShaper(source, cfg.ensemble_method, cfg.lam, cfg.member, kl_coef)
    return PlainShaper(source)


__all__ = ["KINDS", "PromptScoreCache", "RewardError", "RewardSource", "TextReward",
           "build_reward", "build_shaper", "checked_scores", "prompt_scores"]
