"""Per-token rewards, generalised advantage estimation and masked whitening.

All tensors are ``[B, T]`` over response positions; ``mask`` is 1 on valid (generated, up to and
including EOS) tokens and 0 on padding, which may sit on either side.
"""

from __future__ import annotations

import torch


def _local(t: torch.Tensor) -> torch.Tensor:
    return t


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None,
                reduce=_local) -> torch.Tensor:
    """Mean over valid entries. ``reduce`` sums a tensor over processes (``Dist.reduce``), so
    that the mean over all of them is taken; the default keeps it local."""
    mask = mask.to(x.dtype)
    if dim is None:
        return reduce((x * mask).sum()) / reduce(mask.sum()).clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True,
               reduce=_local) -> torch.Tensor:
    """Variance over the valid entries (Bessel-corrected by default, as TRL's whitening)."""
    mean = masked_mean(x, mask, reduce=reduce)
    var = masked_mean((x - mean) ** 2, mask, reduce=reduce)
    if unbiased:
        n = reduce(mask.sum())
        var = var * n / (n - 1).clamp(min=1)
    return var


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True,
                  eps: float = 1e-8, reduce=_local) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) over valid entries (of every process, with ``reduce``);
    padding comes back as 0."""
    mean, var = masked_mean(x, mask, reduce=reduce), masked_var(x, mask, reduce=reduce)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask.to(x.dtype)


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last valid position of each row: [B, T] -> [B] (works for either padding)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return torch.where(mask.bool(), positions, -1).max(dim=1).values.clamp(min=0)


def kl_penalised_rewards(scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                         mask: torch.Tensor, kl_coef: float | torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token reward ``r_t = -beta * (log pi - log pi_ref)``, plus the task score on the last
    valid token (Ziegler et al. 2019, eq. 2; RA-RLHF eq. 1). Nothing lands on padding.

    scores [B]; logprobs, ref_logprobs, mask [B, T]; kl_coef a float or a per-sample [B] tensor.
    Returns (rewards [B, T], kl [B, T]) with both zero on padding.
    """
    mask = mask.to(logprobs.dtype)
    kl = (logprobs - ref_logprobs) * mask
    beta = torch.as_tensor(kl_coef, dtype=kl.dtype, device=kl.device)
    if beta.ndim == 1:
        beta = beta[:, None]
    rewards = -beta * kl
    idx = last_token_index(mask)
    rows = torch.arange(len(scores), device=scores.device)
    rewards[rows, idx] += scores.to(rewards.dtype) * mask[rows, idx]
    return rewards * mask, kl


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
                gamma: float = 1.0, lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) over response tokens.

    delta_t = r_t + gamma * V_{t+1} - V_t;  A_t = delta_t + gamma * lam * A_{t+1};  R_t = A_t + V_t.
    Positions where ``mask`` is 0 count as terminal with reward 0 and value 0, so a right-padded
    row bootstraps from 0 after its last valid token. Returns (advantages, returns), [B, T] each,
    zero where ``mask`` is 0.
    """
    mask = mask.to(values.dtype)
    rewards, values = rewards * mask, values * mask
    T = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(T)):
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = (delta + gamma * lam * last) * mask[:, t]
        advantages[:, t] = last
    returns = (advantages + values) * mask
    return advantages, returns
