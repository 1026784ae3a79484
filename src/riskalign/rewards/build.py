"""Builders of the registered reward kinds (``registry.REWARD_KINDS``): ``RewardConfig -> source``."""

from __future__ import annotations


def vader(cfg):
    from .lexicon import VaderReward

    return VaderReward(cfg.target, cfg.sign)


def non_toxicity(cfg):
    from .lexicon import NonToxicityReward

    return NonToxicityReward(cfg.target, cfg.sign)


def classifier(cfg):
    from .classifier import ClassifierReward

    return ClassifierReward(cfg.model, cfg.label, cfg.target, cfg.sign, cfg.batch_size)


def python(cfg):
    from .python_fn import PythonReward

    return PythonReward(cfg.function, cfg.sign)


def ensemble(cfg):
    from .ensemble import EnsembleReward

    return EnsembleReward(cfg.model, cfg.target, cfg.batch_size)
