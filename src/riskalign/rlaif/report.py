"""Markdown for the labelling report and the before/after evaluation."""

from __future__ import annotations


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def validation_markdown(results: dict, chosen: str) -> str:
    """Each judge mode's accuracy on the validation pairs, with its 95% Wilson interval."""
    lines = ["## Judge accuracy on the validation pairs", "",
             "| mode | accuracy (95% CI) | correct / pairs | ties | failed | order agreement | "
             "action / motivation / consequence |", "|---|---|---|---|---|---|---|"]
    for mode, r in results.items():
        by = " / ".join(_pct(v) for v in r["accuracy_by_aspect"].values())
        lines.append(f"| {mode}{' (used)' if mode == chosen else ''} | {_pct(r['accuracy'])} "
                     f"({_pct(r['ci_low'])}-{_pct(r['ci_high'])}) | {r['correct']} / "
                     f"{r['pairs']} | {r['ties']} | {r['failed']} | "
                     f"{_pct(r['order_agreement'])} | {by} |")
    lines += ["", "A judge no better than a coin scores 50%; ties and failures count as misses."]
    return "\n".join(lines) + "\n"


def labelling_markdown(report: dict) -> str:
    aspects = report["aspects"]
    lines = [f"## AI preference labels (judge {report['judge']}, {report['judge_mode']} mode, "
             f"{report['virtues_per_comparison']} virtue(s) per comparison, tie margin "
             f"{report['tie_margin']})", "",
             "| aspect | pairs | kept | ties | failed | identical | judge order agreement | "
             "judgement failure rate | chosen = first sample |",
             "|---|---|---|---|---|---|---|---|---|"]
    for a, r in aspects.items():
        lines.append(f"| {a} | {r['pairs']} | {r['kept']} | {r['ties']} | {r['failed']} | "
                     f"{r['identical']} | {_pct(r['order_agreement'])} | "
                     f"{_pct(r['judgement_failure_rate'])} | {_pct(r['chosen_is_first_sample'])} |")
    virtues = sorted({v for r in aspects.values() for v in r["order_agreement_by_virtue"]})
    lines += ["", "Order agreement by virtue (share of judgements whose two orders pick the same "
              "text; 50% is what a coin would give):", "",
              "| aspect | " + " | ".join(virtues) + " |", "|---|" + "---|" * len(virtues)]
    for a, r in aspects.items():
        by = r["order_agreement_by_virtue"]
        lines.append(f"| {a} | " + " | ".join(_pct(by.get(v)) for v in virtues) + " |")
    body = "\n".join(lines) + "\n"
    if report.get("validation"):
        body = validation_markdown(report["validation"], report["judge_mode"]) + "\n" + body
    return body


def reward_models_markdown(manifests: dict[str, dict]) -> str:
    """Each aspect's reward model: training pairs and held-out pairwise accuracy, from its
    ensemble manifest (one member per aspect)."""
    lines = ["## Reward models", "", "| aspect | training pairs | held-out pairs | held-out "
             "pairwise accuracy |", "|---|---|---|---|"]
    for aspect, m in manifests.items():
        for r in m["members"]:
            acc = r.get("eval_accuracy")
            lines.append(f"| {aspect} | {r['train_pairs']} | {r.get('eval_pairs', 'n/a')} | "
                         f"{'n/a' if acc is None else f'{acc:.3f}'} |")
    return "\n".join(lines) + "\n"


def _cell(text: str, n: int = 220) -> str:
    text = " ".join(text.split())
    text = text if len(text) <= n else text[:n - 1] + "…"
    return text.replace("|", "\\|")


def evaluation_markdown(results: dict) -> str:
    models = results["models"]
    names = list(models)
    rows = [("UWO training reward (mean)", "reward", "{:+.3f}"),
            ("action score", "action", "{:+.3f}"), ("motivation score", "motivation", "{:+.3f}"),
            ("consequence score", "consequence", "{:+.3f}"),
            ("offensive-language rate", "offensive_rate", "{:.1%}"),
            ("on-topic rate", "on_topic_rate", "{:.1%}"),
            ("answer-prompt similarity (mean cosine)", "prompt_similarity", "{:.3f}"),
            ("response length (tokens)", "length_tokens", "{:.1f}")]
    lines = [f"## Before and after ({results['prompts']} held-out prompts)", "",
             "| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, key, fmt in rows:
        lines.append(f"| {label} | " + " | ".join(fmt.format(models[m][key]) for m in names) + " |")
    lines += ["", f"Independent judge ({results['eval_judge']}, "
              f"{results.get('eval_judge_mode', 'logprob')} mode, asked which answer is more "
              f"helpful, honest, harmless and respectful, both orders):", "",
              "| comparison | wins | ties | losses | failed | win rate | order agreement |",
              "|---|---|---|---|---|---|---|"]
    for name, w in results["win_rates"].items():
        lines.append(f"| {name} | {w['wins']} | {w['ties']} | {w['losses']} | {w['failed']} | "
                     f"{_pct(w['win_rate'])} | {_pct(w['order_agreement'])} |")
    lines += ["", "Win rate = (wins + ties / 2) / judged pairs. On topic: the answer's sentence "
              "embedding is closer to its own prompt than to 90% of the other held-out prompts.",
              "", "## Sample answers", "",
              "| prompt | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for i, p in enumerate(results["samples"]["prompts"]):
        lines.append(f"| {_cell(p, 120)} | " + " | ".join(
            _cell(results["samples"]["answers"][m][i]) for m in names) + " |")
    return "\n".join(lines) + "\n"


__all__ = ["evaluation_markdown", "labelling_markdown"]
