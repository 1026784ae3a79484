"""riskalign: risk-averse and uncertainty-aware RLHF for language models.

Public API: ``compute_gae``, ``AdaptiveKLController`` (and the pieces the trainer is made of).
"""

from .config import ConfigError, RunConfig, load_config
from .ppo.advantages import compute_gae, kl_penalised_rewards, masked_whiten
from .ppo.kl_control import AdaptiveKLController, FixedKLController
from .ppo.losses import policy_loss, value_loss
from .reward_model.loss import bradley_terry_loss
from .rewards.aggregate import aggregate_rewards, uncertainty_weights
from .risk import SoftRiskSelector, select_tail, soft_risk_batch_size

__version__ = "0.1.0"

__all__ = ["AdaptiveKLController", "ConfigError", "FixedKLController", "RunConfig", "compute_gae",
           "kl_penalised_rewards", "load_config", "masked_whiten", "policy_loss", "value_loss",
           "SoftRiskSelector", "select_tail", "soft_risk_batch_size", "aggregate_rewards",
           "uncertainty_weights", "bradley_terry_loss"]
