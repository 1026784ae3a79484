"""AI preference labels for three aspects: sample two answers, ask follow-ups, judge per virtue.

For each prompt the model samples answers a and b and replies to the follow-up questions after
each. For every aspect and each of ``virtues_per_comparison`` sampled virtues the judge compares
the aspect's texts in both orders (``judge.judge_both_orders``); the pair's P(a better) is the
mean of the order-debiased probabilities over the virtues judged without failure. A pair is kept
when that mean is more than ``tie_margin`` from 1/2 (chosen = the better text); ties, identical
answers and pairs with no valid judgement are dropped and counted in the report.
"""

from __future__ import annotations

import random
from collections import Counter


from ..progress import track
from ..reward_model.data import Preference
from .aspects import ASPECTS, follow_up_replies, rm_inputs
from .chat import ChatModel
from .constitution import Constitution
from .judge import Comparison, as_comparer, verdict


def sample_answer_pairs(chat: ChatModel, prompts: list[str], questions: dict[str, str],
                        answer_tokens: int, follow_up_tokens: int, chunk: int = 16) -> list[dict]:
    """Rows {prompt, answers: [a, b], motivation: [., .], consequence: [., .]}."""
    rows = []
    for start in track(range(0, len(prompts), chunk), description="sample answer pairs"):
        batch = prompts[start:start + chunk]
        twice = batch + batch
        answers = chat.reply([[{"role": "user", "content": p}] for p in twice], answer_tokens)
        follow = follow_up_replies(chat, twice, answers, questions, follow_up_tokens)
        n = len(batch)
        for i, p in enumerate(batch):
            row = {"prompt": p, "answers": [answers[i], answers[n + i]]}
            row.update({k: [v[i], v[n + i]] for k, v in follow.items()})
            rows.append(row)
    return rows


def aspect_text(row: dict, aspect: str, which: int, questions: dict[str, str]) -> str:
    """What the judge reads for ``aspect`` of answer ``which`` (0 = a, 1 = b): the answer, or
    the answer followed by the follow-up question and the reply to it."""
    answer = row["answers"][which]
    if aspect == "action":
        return answer
    return f"{answer}\n[{questions[aspect]}] {row[aspect][which]}"


def label_pairs(rows: list[dict], judge, cons: Constitution, virtues_per_comparison: int,
                tie_margin: float, seed: int, chunk: int = 8
                ) -> tuple[dict[str, list[Preference]], dict]:
    """Preferences per aspect and the labelling report (counts and rates per aspect). ``judge``:
    a comparer (``judge.PointwiseComparer``) or a request-level judge, asked in both orders."""
    compare = as_comparer(judge, cons)
    rng = random.Random(seed)
    plans = [cons.sample_virtues(rng, virtues_per_comparison) for _ in rows]
    prefs: dict[str, list[Preference]] = {a: [] for a in ASPECTS}
    report = {}
    for aspect in ASPECTS:
        c: Counter = Counter()
        per_virtue: dict[str, Counter] = {}
        for start in track(range(0, len(rows), chunk), description=f"judge {aspect}"):
            batch = [(r, vs) for r, vs in zip(rows[start:start + chunk],
                                              plans[start:start + chunk])]
            items, owner = [], []
            for k, (row, vs) in enumerate(batch):
                a, b = (aspect_text(row, aspect, w, cons.follow_ups) for w in (0, 1))
                if a.strip() == b.strip():
                    continue
                for v in vs:
                    items.append(Comparison(aspect, v, row["prompt"], a, b))
                    owner.append((k, v.name))
            judged = compare(items) if items else []
            by_row: dict[int, list[float]] = {}
            for (k, vname), j in zip(owner, judged):
                c["judgements"] += 1
                pv = per_virtue.setdefault(vname, Counter())
                pv["judgements"] += 1
                if j.failed:
                    c["failed_judgements"] += 1
                    continue
                c["agreeing_judgements"] += j.agree
                pv["agreeing"] += j.agree
                pv["valid"] += 1
                by_row.setdefault(k, []).append(j.p_first)
            for k, (row, _) in enumerate(batch):
                c["pairs"] += 1
                a, b = (aspect_text(row, aspect, w, cons.follow_ups) for w in (0, 1))
                if a.strip() == b.strip():
                    c["identical"] += 1
                    continue
                ps = by_row.get(k)
                p = sum(ps) / len(ps) if ps else None
                v = verdict(p, tie_margin)
                if v in ("tie", "failed"):
                    c[v] += 1
                    continue
                first = v == "first"
                c["chosen_first"] += first
                ctx_a, txt_a = _rm(aspect, row, 0, cons)
                _, txt_b = _rm(aspect, row, 1, cons)
                prefs[aspect].append(Preference(ctx_a, txt_a if first else txt_b,
                                                txt_b if first else txt_a))
        report[aspect] = _summary(c, len(prefs[aspect]), per_virtue)
    return prefs, report


def _rm(aspect: str, row: dict, which: int, cons: Constitution) -> tuple[str, str]:
    follow = {k: row[k][which] for k in cons.follow_ups}
    return rm_inputs(aspect, row["prompt"], row["answers"][which], follow, cons.follow_ups)


def _summary(c: Counter, kept: int, per_virtue: dict[str, Counter]) -> dict:
    valid = c["judgements"] - c["failed_judgements"]
    pairs = max(1, c["pairs"])
    return {
        "pairs": c["pairs"], "kept": kept, "ties": c["tie"], "failed": c["failed"],
        "identical": c["identical"],
        "judgements": c["judgements"],
        "judgement_failure_rate": c["failed_judgements"] / max(1, c["judgements"]),
        "order_agreement": c["agreeing_judgements"] / valid if valid else None,
        "tie_rate": c["tie"] / pairs, "failure_rate": c["failed"] / pairs,
        "chosen_is_first_sample": c["chosen_first"] / kept if kept else None,
        "order_agreement_by_virtue": {v: (pv["agreeing"] / pv["valid"] if pv["valid"] else None)
                                      for v, pv in sorted(per_virtue.items())},
    }


__all__ = ["aspect_text", "label_pairs", "sample_answer_pairs"]
