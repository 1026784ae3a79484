"""Pairwise (Bradley-Terry) reward-model loss with optional reward centering.

For chosen and rejected rewards r+ and r- [B]:
    loss = mean_i( -log sigmoid(r+_i - r-_i) + eta * (r+_i + r-_i)^2 )
eta (``center_coef``) pulls the two rewards of a pair towards a sum of zero, keeping the model's
scale centred (used by the uncertainty-aware RLHF paper; 0 gives the plain Bradley-Terry loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor,
                       center_coef: float = 0.0) -> torch.Tensor:
    """Batch mean of -log sigmoid(chosen - rejected) + center_coef * (chosen + rejected)^2."""
    if chosen.shape != rejected.shape:
        raise ValueError(f"chosen {tuple(chosen.shape)} and rejected {tuple(rejected.shape)} "
                         f"rewards must have the same shape")
    loss = -F.logsigmoid(chosen - rejected)
    if center_coef:
        loss = loss + center_coef * (chosen + rejected) ** 2
    return loss.mean()


def pairwise_accuracy(chosen: torch.Tensor, rejected: torch.Tensor) -> float:
    """Share of pairs where the chosen answer gets the higher reward (ties count half)."""
    return ((chosen > rejected).float() + 0.5 * (chosen == rejected).float()).mean().item()


__all__ = ["bradley_terry_loss", "pairwise_accuracy"]
