"""riskalign: risk-averse and uncertainty-aware RLHF for language models.

The trainer API (``api``): ``train`` and ``make_trainer`` take a model (name, folder or
transformers model), a reward (a ``(prompts, completions) -> numbers`` callable, a list of them
with weights, an ``Ensemble`` or a ``RewardShaper``), prompts (a list or a ``datasets.Dataset``)
and a ``RunConfig``; ``presets`` holds CPU-sized configs. The two plug points are
``RewardShaper`` (rewards and per-sample KL coefficients and weights) and ``Selector`` (which
trajectories train; ``SoftRiskSelector`` is RA-RLHF's). The formulas are exported too.
"""

from . import presets
from .api import TrainResult, make_trainer, task_prompts, train
from .config import ConfigError, RunConfig, load_config
from .ppo.advantages import compute_gae, kl_penalised_rewards, masked_whiten
from .ppo.kl_control import AdaptiveKLController, FixedKLController
from .ppo.losses import policy_loss, value_loss
from .ppo.trainer import PPOTrainer
from .reward_model.loss import bradley_terry_loss
from .rewards import (Ensemble, EnsembleShaper, FunctionShaper, PlainShaper, RewardShaper,
                      ShapedReward, WeightedSum)
from .rewards.aggregate import aggregate_rewards, uncertainty_weights
from .risk import Selector, SoftRiskSelector, select_tail, soft_risk_batch_size

__version__ = "0.1.0"

__all__ = ["AdaptiveKLController", "ConfigError", "Ensemble", "EnsembleShaper",
           "FixedKLController", "FunctionShaper", "PPOTrainer", "PlainShaper", "RewardShaper",
           "RunConfig", "Selector", "ShapedReward", "SoftRiskSelector", "TrainResult",
           "WeightedSum", "aggregate_rewards", "bradley_terry_loss", "compute_gae",
           "kl_penalised_rewards", "load_config", "make_trainer", "masked_whiten",
           "policy_loss", "presets", "select_tail", "soft_risk_batch_size", "task_prompts",
           "train", "uncertainty_weights", "value_loss"]
