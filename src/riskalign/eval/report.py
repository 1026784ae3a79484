"""``report.md``: the evaluation's tables, pictures and the hardest prompts' completions."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..atomic import write_text


def _fmt(m: dict, key: str, digits: int = 3) -> str:
    v = m.get(key, float("nan"))
    if v is None or math.isnan(v):
        return "n/a"
    s = f"{v:+.{digits}f}" if key.startswith(("mean", "tail", "cvar")) else f"{v:.{digits}f}"
    std = m.get(f"{key}_std")
    return f"{s} ± {std:.{digits}f}" if std is not None and not math.isnan(std) else s


def _cell(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    text = text if len(text) <= limit else text[:limit - 1] + "…"
    return text.replace("|", "\\|")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(r) + " |" for r in rows])


def write_report(out: Path, cfg, result: dict, raws: dict, prompts: list[str],
                 scores: torch.Tensor, threshold: float, reward_name: str, task,
                 scorer: str) -> None:
    seeds = ", ".join(str(s) for s in cfg.seeds)
    qs = [f"tail_reward_q{q:g}" for q in cfg.tail_percents]
    any_model = next(iter(result.values()))
    lines = [
        "# Evaluation report", "",
        f"Task `{task.name}`: {len(prompts)} held-out prompts of {task.prompt_tokens} tokens, "
        f"{task.new_tokens} new tokens (at least {task.min_new_tokens}), temperature "
        f"{cfg.temperature}; reward `{reward_name}` of prompt + completion; seeds {seeds} "
        f"(values are mean ± sample std over seeds when there are several).",
        f"Prompt score = the reward of the prompt alone; mean over prompts "
        f"{_fmt(any_model, 'prompt_score_mean')}. {int(any_model['tail_threshold_prompts'])} "
        f"prompts score <= {threshold:g}.", "",
        "## Reward, mean and tail", "",
    ]
    rows = [[name, _fmt(m, "mean_reward"), _fmt(m, "tail_reward_threshold"),
             *[_fmt(m, k) for k in qs], _fmt(m, "cvar_reward")] for name, m in result.items()]
    lines += _table(["model", "mean reward", f"prompts <= {threshold:g}",
                     *[f"worst {q:g}% prompts" for q in cfg.tail_percents],
                     f"CVaR {cfg.cvar_alpha:g} of rewards"], rows)
    lines += ["", "## Fluency and diversity", "",
              "Reference perplexity: held-out texts of class "
              f"{cfg.reference_label} under each model (sliding window {cfg.ppl_window}, stride "
              f"{cfg.ppl_stride}). Generation perplexity: each model's completions under the fixed "
              f"scorer `{scorer}`. Distinct-n: unique / total word n-grams "
              "over all completions.", ""]
    rows = [[name, _fmt(m, "ppl_reference", 2), _fmt(m, "ppl_generations", 2),
             _fmt(m, "distinct_1"), _fmt(m, "distinct_2"), _fmt(m, "distinct_3"),
             _fmt(m, "completion_words", 1)] for name, m in result.items()]
    lines += _table(["model", "reference ppl", "generation ppl", "distinct-1", "distinct-2",
                     "distinct-3", "words / completion"], rows)
    lines += ["", "## Pictures", "",
              "![Mean reward over the worst q% of prompts](quantile_curve.png)", "",
              "![Prompt scores and completion rewards by class](reward_histograms.png)", "",
              f"## The three hardest prompts (seed {cfg.seeds[0]})", ""]
    for i in torch.argsort(scores, stable=True)[:3].tolist():
        lines += [f"**Prompt** (score {scores[i].item():+.3f}): {_cell(prompts[i])}", ""]
        rows = [[name, f"{rs[0]['rewards'][i]:+.3f}", _cell(rs[0]["completions"][i])]
                for name, rs in raws.items()]
        lines += _table(["model", "reward", "completion"], rows) + [""]
    write_text(out / "report.md", "\n".join(lines) + "\n")


__all__ = ["write_report"]
