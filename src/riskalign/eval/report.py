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
                 scorer: str, paired: dict | None = None) -> None:
    seeds = ", ".join(str(s) for s in cfg.seeds)
    qs = [f"tail_reward_q{q:g}" for q in cfg.tail_percents]
    any_model = next(iter(result.values()))
    lines = [
        "# Evaluation report", "",
        f"Task `{task.name}`: {len(prompts)} held-out prompts of {task.prompt_tokens} tokens, "
        f"{task.new_tokens} new tokens (at least {task.min_new_tokens}), temperature "
        f"{cfg.temperature}; reward `{reward_name}` of prompt + completion; seeds {seeds}; "
        f"{cfg.samples_per_prompt} completion(s) per prompt and seed, a prompt's reward being "
        "their mean (values are mean ± sample std over seeds when there are several).",
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
    lines += paired_lines(paired, cfg.tail_percents) if paired else []
    lines += ["", "## Fluency and diversity", "",
              "Reference perplexity: held-out texts of class "
              f"{cfg.reference_label} under each model (sliding window {cfg.ppl_window}, stride "
              f"{cfg.ppl_stride}). Generation perplexity: each model's completions under the fixed "
              f"scorer `{scorer}`. Distinct-n per text: unique / total word n-grams within each "
              "completion, averaged (as RA-RLHF reports it); pooled: over all completions "
              "together.", ""]
    rows = [[name, _fmt(m, "ppl_reference", 2), _fmt(m, "ppl_generations", 2),
             *[_fmt(m, f"distinct_{n}_per_text") for n in (1, 2, 3)],
             *[_fmt(m, f"distinct_{n}_pooled") for n in (1, 2)],
             _fmt(m, "completion_words", 1)] for name, m in result.items()]
    lines += _table(["model", "reference ppl", "generation ppl", "distinct-1 per text",
                     "distinct-2 per text", "distinct-3 per text", "distinct-1 pooled",
                     "distinct-2 pooled", "words / completion"], rows)
    lines += ["", "## Pictures", "",
              "![Mean reward over the worst q% of prompts](quantile_curve.png)", "",
              "![Prompt scores and completion rewards by class](reward_histograms.png)", "",
              f"## The three hardest prompts (seed {cfg.seeds[0]})", ""]
    for i in torch.argsort(scores, stable=True)[:3].tolist():
        lines += [f"**Prompt** (score {scores[i].item():+.3f}): {_cell(prompts[i])}", ""]
        k = i * cfg.samples_per_prompt  # the prompt's first sample
        rows = [[name, f"{rs[0]['rewards'][k]:+.3f}", _cell(rs[0]["completions"][k])]
                for name, rs in raws.items()]
        lines += _table(["model", "reward", "completion"], rows) + [""]
    write_text(out / "report.md", "\n".join(lines) + "\n")


def paired_lines(paired: dict, tail_percents: list[float]) -> list[str]:
    """The report's paired-comparison table: each model minus the baseline, with 95% CIs."""
    def cell(d: dict) -> str:
        if math.isnan(d["diff"]):
            return "n/a"
        return f"{d['diff']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"

    keys = ["mean_reward", *[f"tail_reward_q{q:g}" for q in tail_percents],
            "tail_reward_threshold", "cvar_reward"]
    wins = [f"tail_win_rate_q{q:g}" for q in tail_percents]
    lines = ["", f"## Paired differences against `{paired['baseline']}`", "",
             f"Model minus baseline on the same {paired['n_prompts']} prompts and "
             f"{paired['n_seeds']} sampling seed(s) ({paired['samples_per_prompt']} completion(s) "
             f"each), with 95% bootstrap intervals over prompts ({paired['bootstrap']} resamples, "
             "a prompt's seeds kept together). An interval that excludes 0 is a difference the "
             "data support; win rate: share of (tail prompt, seed) pairs where the model's reward "
             "is higher (ties half), no difference = 0.500.", ""]
    head = ["model", "mean reward", *[f"worst {q:g}%" for q in tail_percents],
            "prompts <= threshold", "CVaR"]
    rows = [[name, *[cell(m[k]) for k in keys]] for name, m in paired["models"].items()]
    lines += _table(head, rows) + [""]
    rows = [[name, *[cell(m[k]).replace("+", "") for k in wins]]
            for name, m in paired["models"].items()]
    lines += _table(["model", *[f"win rate, worst {q:g}%" for q in tail_percents]], rows)
    if paired["n_seeds"] < 2:
        return lines

    def seed_cell(d: dict) -> str:
        if d["seed_ci_low"] is None or d["seed_ci_high"] is None:
            return "n/a"
        per = ", ".join(f"{x:+.3f}" for x in d["by_seed"])
        return f"[{d['seed_ci_low']:+.3f}, {d['seed_ci_high']:+.3f}] ({per})"

    lines += ["", f"Over the {paired['n_seeds']} seeds: 95% Student-t interval of the per-seed "
              "differences (the per-seed values follow in parentheses). Where each seed is a separately "
              "trained model, this interval covers the spread between training runs, which the "
              "interval over prompts does not.", ""]
    rows = [[name, *[seed_cell(m[k]) for k in keys]] for name, m in paired["models"].items()]
    return lines + _table(head, rows)


__all__ = ["paired_lines", "write_report"]
