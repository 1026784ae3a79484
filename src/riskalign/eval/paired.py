"""Paired comparisons of two models on the same held-out prompts and sampling seeds.

Every model is evaluated on the same N prompts with the same sampling seeds, so the natural
unit of comparison is the prompt: ``a[s, i]`` and ``b[s, i]`` are the baseline's and the model's
reward on prompt i under seed s (the mean over ``samples_per_prompt`` completions). Each
statistic is a difference, model minus baseline:

- ``mean_reward``: mean over seeds and prompts of b - a;
- ``tail_reward_q{q}``: the same over the worst q% of prompts by prompt score (the tail rule of
  ``metrics.worst_prompts_reward``), and ``tail_reward_threshold`` over prompts scoring <= the
  threshold;
- ``cvar_reward``: per seed, CVaR_alpha of b minus CVaR_alpha of a (each over its own worst
  outcomes), averaged over seeds;
- ``tail_win_rate_q{q}``: the share of (tail prompt, seed) pairs where b > a (a tie counts
  half); its "no difference" value is 0.5, not 0.

The 95% interval is a percentile bootstrap over prompts with the seeds pooled: each resample
draws N prompt indices with replacement and keeps every seed of a drawn prompt together, then
recomputes the statistic (tails included) on the resample. ``ci_low``/``ci_high`` are the 2.5th
and 97.5th percentiles (linear interpolation, as ``torch.quantile``) of the resampled values.
That interval holds the trained models fixed. Where each training seed gives one difference,
``seed_interval`` is the 95% Student-t interval over those differences, which does cover the
spread between training seeds (wide with few seeds, as it should be).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from scipy.stats import t as student_t

from .metrics import cvar, tail_count
from ..risk import select_tail

Statistic = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], float]


def per_prompt(rewards: list[float], n_prompts: int) -> torch.Tensor:
    """[N] per-prompt rewards from a raw result's rewards [N * S] (prompt-major: the S samples
    of prompt i are entries i*S .. i*S + S - 1), averaged over the S samples."""
    r = torch.tensor(rewards, dtype=torch.float64)
    if len(r) % n_prompts:
        raise ValueError(f"{len(r)} rewards do not split into {n_prompts} prompts")
    return r.view(n_prompts, -1).mean(1)


def paired_matrix(raws: list[dict], seeds: list[int], n_prompts: int) -> torch.Tensor:
    """[S, N] rewards of one model with row s = sampling seed ``seeds[s]``: raw results are
    matched by their recorded seed, never by position."""
    by_seed = {int(r["seed"]): r for r in raws}
    missing = [s for s in seeds if s not in by_seed]
    if missing:
        raise ValueError(f"no result for sampling seed {missing[0]}")
    return torch.stack([per_prompt(by_seed[s]["rewards"], n_prompts) for s in seeds])


def tail_mean_diff(q: float) -> Statistic:
    def stat(a, b, scores):
        idx = select_tail(scores, tail_count(len(scores), q / 100))
        return (b[:, idx] - a[:, idx]).mean().item()
    return stat


def threshold_diff(threshold: float) -> Statistic:
    def stat(a, b, scores):
        keep = scores <= threshold
        return (b[:, keep] - a[:, keep]).mean().item() if bool(keep.any()) else float("nan")
    return stat


def tail_win_rate(q: float) -> Statistic:
    def stat(a, b, scores):
        idx = select_tail(scores, tail_count(len(scores), q / 100))
        d = b[:, idx] - a[:, idx]
        return ((d > 0).double() + 0.5 * (d == 0).double()).mean().item()
    return stat


def mean_diff(a, b, scores) -> float:
    return (b - a).mean().item()


def cvar_diff(alpha: float) -> Statistic:
    def stat(a, b, scores):
        return sum(cvar(b[s], alpha) - cvar(a[s], alpha) for s in range(len(a))) / len(a)
    return stat


def statistics(tail_percents: list[float], threshold: float, cvar_alpha: float
               ) -> dict[str, Statistic]:
    stats: dict[str, Statistic] = {"mean_reward": mean_diff}
    for q in tail_percents:
        stats[f"tail_reward_q{q:g}"] = tail_mean_diff(q)
    stats["tail_reward_threshold"] = threshold_diff(threshold)
    stats["cvar_reward"] = cvar_diff(cvar_alpha)
    for q in tail_percents:
        stats[f"tail_win_rate_q{q:g}"] = tail_win_rate(q)
    return stats


def bootstrap_draws(n_prompts: int, n_boot: int, seed: int) -> torch.Tensor:
    """[n_boot, N] prompt indices drawn with replacement (seeded)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, n_prompts, (n_boot, n_prompts), generator=g)


def paired_interval(a: torch.Tensor, b: torch.Tensor, scores: torch.Tensor, stat: Statistic,
                    draws: torch.Tensor) -> dict[str, float]:
    """{diff, ci_low, ci_high} of ``stat`` for a, b [S, N] and prompt scores [N]; ``draws``
    [R, N] are the bootstrap's prompt indices (all seeds of a prompt move together)."""
    values = torch.tensor([stat(a[:, d], b[:, d], scores[d]) for d in draws], dtype=torch.float64)
    values = values[~values.isnan()]
    diff = stat(a, b, scores)
    if len(values) == 0:
        return {"diff": diff, "ci_low": float("nan"), "ci_high": float("nan")}
    lo, hi = torch.quantile(values, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return {"diff": diff, "ci_low": lo, "ci_high": hi}


def seed_interval(diffs: list[float], level: float = 0.95) -> tuple[float, float]:
    """Student-t interval for the mean of per-training-seed differences d_1..d_S:
    mean(d) -/+ t_{(1 + level)/2, S-1} * sd(d) / sqrt(S), sd with S - 1 in the denominator;
    (nan, nan) for fewer than 2 seeds."""
    d = torch.tensor(diffs, dtype=torch.float64)
    if len(d) < 2:
        return float("nan"), float("nan")
    half = float(student_t.ppf((1 + level) / 2, len(d) - 1)) * d.std().item() / len(d) ** 0.5
    return d.mean().item() - half, d.mean().item() + half


def with_seed_interval(a: torch.Tensor, b: torch.Tensor, scores: torch.Tensor, stat: Statistic,
                       draws: torch.Tensor) -> dict:
    """``paired_interval``'s {diff, ci_low, ci_high}; with two or more seeds also ``by_seed``
    (the statistic on each seed's row of a and b alone) and ``seed_ci_low``/``seed_ci_high``
    (``seed_interval`` of those; None where undefined, e.g. a threshold tail with no prompts).
    A t interval can reach past a statistic's range (a win rate's [0, 1]); it is not clipped."""
    d = paired_interval(a, b, scores, stat, draws)
    if a.shape[0] < 2:
        return d
    by_seed = [stat(a[s:s + 1], b[s:s + 1], scores) for s in range(a.shape[0])]
    lo, hi = seed_interval(by_seed)
    return {**d, "by_seed": [None if math.isnan(x) else x for x in by_seed],
            "seed_ci_low": None if math.isnan(lo) else lo,
            "seed_ci_high": None if math.isnan(hi) else hi}


def compare(matrices: dict[str, torch.Tensor], baseline: str, scores: torch.Tensor,
            tail_percents: list[float], threshold: float, cvar_alpha: float,
            n_boot: int = 2000, seed: int = 0) -> dict:
    """Every model against ``baseline``: {name: {statistic: {diff, ci_low, ci_high, by_seed,
    seed_ci_low, seed_ci_high}}} (``with_seed_interval``). All statistics of all models use the
    same bootstrap draws."""
    if baseline not in matrices:
        raise ValueError(f"baseline '{baseline}' is not one of the models "
                         f"({', '.join(matrices)})")
    n = scores.shape[0]
    draws = bootstrap_draws(n, n_boot, seed)
    stats = statistics(tail_percents, threshold, cvar_alpha)
    a = matrices[baseline]
    return {name: {k: with_seed_interval(a, b, scores.double(), f, draws)
                   for k, f in stats.items()}
            for name, b in matrices.items() if name != baseline}


__all__ = ["bootstrap_draws", "compare", "paired_interval", "paired_matrix", "per_prompt",
           "seed_interval", "statistics", "with_seed_interval"]
