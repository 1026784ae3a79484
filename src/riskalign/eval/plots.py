"""Evaluation pictures (matplotlib, Agg backend, PNG)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..files import read_jsonl  # noqa: E402


def _save(fig, path: Path, dpi: int) -> None:
    """Write the PNG next to its target, then rename: never a half-written picture."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")  # removed by a later run if a kill leaves it
    fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    os.replace(tmp, path)


def plot_quantile_curves(curves: dict[str, list[float]], percents: list[int], path: Path,
                         reward_name: str) -> None:
    """One line per model: mean reward over the worst q% of prompts (by prompt score)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, ys in curves.items():
        ax.plot(percents, ys, label=name, linewidth=1.8)
    ax.set_xlabel("worst q% of held-out prompts, ranked by prompt score")
    ax.set_ylabel(f"mean {reward_name} of prompt + completion")
    ax.set_title("Tail reward by prompt quantile")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save(fig, path, 120)


def plot_histograms(prompt_scores: list[float], rewards: dict[str, list[float]],
                    labels: list, label_names: tuple[str, str], path: Path,
                    reward_name: str, repeats: int = 1) -> None:
    """Panels: prompt scores, then each model's completion rewards (``repeats`` seeds pooled,
    seed-major). Bars are stacked by the class label of the review each prompt was cut from
    (unlabelled in grey), so every colour in a bar is in the legend."""
    panels = [("prompt alone", prompt_scores)] + list(rewards.items())
    groups = [(0, label_names[0], "tab:red"), (1, label_names[1], "tab:blue"),
              (None, "unlabelled", "tab:gray")]
    fig, axes = plt.subplots(len(panels), 1, figsize=(6.4, 1.9 * len(panels)), sharex=True)
    axes = list(axes) if len(panels) > 1 else [axes]
    lo = min(min(v) for _, v in panels)
    hi = max(max(v) for _, v in panels)
    bins = [lo + (hi - lo) * i / 30 for i in range(31)] if hi > lo else 10
    from matplotlib.ticker import MaxNLocator

    for ax, (title, values) in zip(axes, panels):
        labs = labels if len(values) == len(labels) else labels * repeats
        stacks = [([v for v, l in zip(values, labs) if l == lab], f"{name}", colour)
                  for lab, name, colour in groups]
        stacks = [(v, f"{n} ({len(v)})", c) for v, n, c in stacks if v]
        ax.hist([v for v, _, _ in stacks], bins=bins, histtype="barstacked",
                color=[c for _, _, c in stacks], label=[n for _, n, _ in stacks])
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("count")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7, title="class of the source review", title_fontsize=7)
    axes[-1].set_xlabel(reward_name)
    fig.tight_layout()
    _save(fig, path, 110)


def plot_training_curves(runs: dict[str, list[Path]], path: Path) -> None:
    """Training score per iteration, mean over each run's seeds: the whole batch (solid) and,
    where a tail was selected, the kept trajectories (dashed)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for i, (name, files) in enumerate(runs.items()):
        logs = [read_jsonl(f, "metrics log", torn_tail=True) for f in files if Path(f).exists()]
        if not logs:
            continue
        n = min(len(log) for log in logs)
        its = [logs[0][k]["iteration"] for k in range(n)]
        colour = f"C{i}"
        for key, style, label in (("score_mean", "-", "batch"), ("kept_score_mean", "--", "kept")):
            ys = [sum(log[k][key] for log in logs) / len(logs) for k in range(n)]
            if key == "kept_score_mean" and "risk_b0" not in logs[0][0]:
                continue
            ax.plot(its, ys, style, color=colour, label=f"{name} ({label})")
    ax.set_xlabel("PPO iteration")
    ax.set_ylabel("mean training score")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path, 120)


def plot_tail_during_training(logs: dict[str, list[list[dict]]], path: Path,
                              percent: float) -> None:
    """Per method, the logged ``tail_score`` (mean training score of the batch's worst
    ``percent``% by prompt score) against iteration: mean over seeds, band = min-max."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for i, (name, runs) in enumerate(logs.items()):
        runs = [r for r in runs if r]
        if not runs:
            continue
        n = min(len(r) for r in runs)
        its = [runs[0][k]["iteration"] for k in range(n)]
        vals = [[r[k]["tail_score"] for r in runs] for k in range(n)]
        ax.plot(its, [sum(v) / len(v) for v in vals], color=f"C{i}",
                label=f"{name} ({'mean of ' if len(runs) > 1 else ''}{len(runs)} "
                      f"seed{'s' if len(runs) > 1 else ''})")
        ax.fill_between(its, [min(v) for v in vals], [max(v) for v in vals], color=f"C{i}",
                        alpha=0.2, linewidth=0)
    ax.set_xlabel("PPO iteration")
    ax.set_ylabel(f"training score of the batch's worst {percent:g}%\n(by prompt score)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path, 120)


def plot_gold_vs_kl(curves: dict[str, list[dict]], path: Path) -> None:
    """Held-out gold reward against sqrt(KL to the reference), one line per method (the
    frontier of Gao et al.; points follow training, mean over seeds)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (name, points) in enumerate(curves.items()):
        ax.plot([max(p["heldout_kl"], 0.0) ** 0.5 for p in points],
                [p["heldout_gold"] for p in points], marker="o", markersize=3, color=f"C{i}",
                label=name)
    ax.set_xlabel("sqrt(KL to the reference)  (KL in nats per sample)")
    ax.set_ylabel("held-out gold reward")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path, 120)


def plot_overopt_curves(curves: dict[str, list[dict]], path: Path) -> None:
    """Three panels (held-out gold reward, proxy reward, KL) against PPO iteration, one line
    per ensemble method."""
    keys = (("heldout_gold", "gold reward"), ("heldout_proxy", "proxy reward (ensemble mean)"),
            ("heldout_kl", "KL to reference (nats)"))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, (key, title) in zip(axes, keys):
        for name, points in curves.items():
            ax.plot([p["iteration"] for p in points], [p[key] for p in points], marker="o",
                    markersize=3, label=name)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("PPO iteration")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path, 110)


__all__ = ["plot_gold_vs_kl", "plot_histograms", "plot_overopt_curves", "plot_quantile_curves",
           "plot_tail_during_training", "plot_training_curves"]


def plot_rlaif_scores(models: dict[str, dict], path: Path) -> None:
    """Grouped bars: the UWO reward and its three standardised aspect scores per model."""
    keys = [("reward", "UWO reward"), ("action", "action"), ("motivation", "motivation"),
            ("consequence", "consequence")]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    width = 0.8 / max(1, len(models))
    for i, (name, m) in enumerate(models.items()):
        xs = [k + (i - (len(models) - 1) / 2) * width for k in range(len(keys))]
        ax.bar(xs, [m[k] for k, _ in keys], width, label=name)
    ax.set_xticks(range(len(keys)), [label for _, label in keys])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("mean standardised score (held-out prompts)")
    ax.set_title("RLAIF reward and its aspects, before and after")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save(fig, path, 120)
