"""PPO losses (Schulman et al. 2017): clipped surrogate policy loss and clipped value loss.

Inputs are ``[B, T]`` over response tokens; means run over valid tokens (``mask``). An optional
per-sample weight ``[B]`` scales each trajectory's tokens in the policy loss (used by
uncertainty-weighted objectives); with no weight every token counts once.
"""

from __future__ import annotations

import torch

from .advantages import masked_mean


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, cliprange: float,
                sample_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """L = mean_t max(-A_t * rho_t, -A_t * clip(rho_t, 1 - eps, 1 + eps)), rho_t = pi / pi_old."""
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    per_token = torch.maximum(unclipped, clipped)
    if sample_weight is not None:
        per_token = per_token * sample_weight[:, None]
    loss = masked_mean(per_token, mask)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean((clipped > unclipped).float(), mask).item(),
            "approx_kl": masked_mean(0.5 * (logprobs - old_logprobs) ** 2, mask).item(),
        }
    return loss, stats


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
               mask: torch.Tensor, cliprange_value: float) -> tuple[torch.Tensor, dict]:
    """L_V = 0.5 * mean_t max((V - R)^2, (clip(V, V_old - c, V_old + c) - R)^2)."""
    clipped_values = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    unclipped = (values - returns) ** 2
    clipped = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {"vf_clipfrac": masked_mean((clipped > unclipped).float(), mask).item()}
    return loss, stats
