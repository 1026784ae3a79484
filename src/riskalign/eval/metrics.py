"""Evaluation metrics over one model's held-out generations (pure functions, no models).

Inputs are per-prompt tensors [N]: ``rewards`` (reward of prompt + completion) and
``prompt_scores`` (reward of the prompt alone). "Worst q% of prompts" ranks prompts by prompt
score, lowest first, ties to the earlier prompt, and keeps ``ceil(q / 100 * N)`` of them (at least
one), as RA-RLHF's tail evaluation does.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter

import torch

from ..risk import select_tail


def tail_count(n: int, fraction: float) -> int:
    """Number of items in the worst ``fraction`` of n: ceil(fraction * n), at least 1."""
    if not 0 < fraction <= 1:
        raise ValueError(f"tail fraction must be in (0, 1], got {fraction}")
    return max(1, min(n, math.ceil(round(fraction * n, 9))))


def worst_prompts_reward(rewards: torch.Tensor, prompt_scores: torch.Tensor, q: float) -> float:
    """Mean reward over the worst ``q`` percent of prompts by prompt score."""
    idx = select_tail(prompt_scores, tail_count(len(prompt_scores), q / 100))
    return rewards[idx].mean().item()


def threshold_reward(rewards: torch.Tensor, prompt_scores: torch.Tensor,
                     threshold: float) -> tuple[float, int]:
    """Mean reward over prompts with prompt score <= threshold, and how many there are
    (NaN and 0 when none)."""
    keep = prompt_scores <= threshold
    n = int(keep.sum())
    return (rewards[keep].mean().item() if n else float("nan")), n


def cvar(values: torch.Tensor, alpha: float) -> float:
    """CVaR_alpha of outcomes: the mean of the lowest ceil(alpha * N) values."""
    return values.sort().values[:tail_count(len(values), alpha)].mean().item()


def quantile_curve(rewards: torch.Tensor, prompt_scores: torch.Tensor,
                   percents: range = range(1, 101)) -> list[float]:
    """For each q in ``percents``: mean reward over the worst q% of prompts by prompt score."""
    order = torch.argsort(prompt_scores, stable=True)  # same ties rule as select_tail
    cum = torch.cumsum(rewards[order].double(), 0)
    return [(cum[k - 1] / k).item() for k in (tail_count(len(order), q / 100) for q in percents)]


def _ngrams(text: str, n: int) -> list[tuple[str, ...]]:
    words = text.lower().split()
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def distinct_n(texts: list[str], n: int) -> float:
    """Pooled Distinct-n: unique word n-grams / all word n-grams over all texts together
    (words: lower-cased whitespace split). 0 when there are no n-grams."""
    grams: Counter = Counter()
    for t in texts:
        grams.update(_ngrams(t, n))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0


def distinct_n_per_text(texts: list[str], n: int) -> float:
    """Per-text Distinct-n, as RA-RLHF reports it: unique / all word n-grams within each text,
    averaged over the texts that have at least one n-gram (0 when none has)."""
    shares = [len(set(g)) / len(g) for g in (_ngrams(t, n) for t in texts) if g]
    return sum(shares) / len(shares) if shares else 0.0


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single value); NaNs are skipped."""
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return float("nan"), float("nan")
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def across_seeds(per_seed: list[dict[str, float]]) -> dict[str, float]:
    """Merge one metrics dict per seed into ``{k: mean, k_std: std}`` (std only with >1 seed)."""
    out: dict[str, float] = {}
    for k in per_seed[0]:
        m, s = mean_std([d[k] for d in per_seed])
        out[k] = m
        if len(per_seed) > 1:
            out[f"{k}_std"] = s
    return out


__all__ = ["across_seeds", "cvar", "distinct_n", "distinct_n_per_text", "mean_std", "quantile_curve", "tail_count",
           "threshold_reward", "worst_prompts_reward"]
