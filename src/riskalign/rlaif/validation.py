"""How accurate is the AI judge? Its verdicts on pairs whose better text is known.

The package ships ``data/judge_validation.jsonl``: pairs written for this project, covering the
six default virtues and the three aspects. Each row has ``virtue``, ``aspect`` (action,
motivation or consequence), ``question``, ``better`` and ``worse`` (the answers) and, for the
motivation and consequence aspects, ``better_reply`` and ``worse_reply`` (the replies to the
constitution's follow-up question). In each pair the better text is clearly better on the
virtue. The judge reads them exactly as it reads labelling pairs (``labelling.aspect_text``).

Accuracy = pairs whose order-debiased verdict picks the better text / all pairs; ties and
failures count as misses (they are reported too). The 95% interval is Wilson's score interval
for a binomial proportion. Order agreement is the share of valid judgements whose two orders
pick the same text (a pointwise judge always agrees with itself).
"""

from __future__ import annotations

import math
from pathlib import Path

from ..tasks import DataError
from ..tasks.files import read_records
from .aspects import ASPECTS
from .constitution import Constitution
from .judge import Comparison, as_comparer, verdict
from .labelling import aspect_text

VALIDATION_FILE = Path(__file__).parent / "data" / "judge_validation.jsonl"
FIELDS = ("virtue", "aspect", "question", "better", "worse")


def load_validation(cons: Constitution,
                    path: str | Path | None = None) -> tuple[list[dict], int]:
    """(rows of the validation file whose virtue the constitution has, how many rows were
    left out for a virtue it lacks). Malformed rows are errors naming the row, and so is a file
    left with no pairs (an accuracy over none means nothing)."""
    p = Path(path or VALIDATION_FILE)
    names = {v.name for v in cons.virtues}
    rows, skipped = [], 0
    for i, row in enumerate(read_records(p), start=1):
        missing = [k for k in FIELDS if not str(row.get(k) or "").strip()]
        if row.get("aspect") in ("motivation", "consequence"):
            missing += [k for k in ("better_reply", "worse_reply")
                        if not str(row.get(k) or "").strip()]
        if missing:
            raise DataError(f"{p} row {i}: missing {', '.join(missing)}")
        if row["aspect"] not in ASPECTS:
            raise DataError(f"{p} row {i}: aspect must be one of {', '.join(ASPECTS)}, got "
                            f"{row['aspect']!r}")
        if row["virtue"] in names:
            rows.append(row)
        else:
            skipped += 1
    if not rows:
        raise DataError(f"{p}: no pairs of the constitution's virtues ({skipped} of other "
                        "virtues left out)")
    return rows, skipped


def wilson_interval(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95% Wilson score interval for k successes in n trials."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def comparisons(rows: list[dict], cons: Constitution) -> list[Comparison]:
    """One comparison per row, the better text first."""
    virtues = {v.name: v for v in cons.virtues}
    out = []
    for r in rows:
        row = {"answers": [r["better"], r["worse"]]}
        if r["aspect"] != "action":
            row[r["aspect"]] = [r["better_reply"], r["worse_reply"]]
        a, b = (aspect_text(row, r["aspect"], w, cons.follow_ups) for w in (0, 1))
        out.append(Comparison(r["aspect"], virtues[r["virtue"]], r["question"], a, b))
    return out


def judge_accuracy(judge, rows: list[dict], cons: Constitution, tie_margin: float = 0.0,
                   chunk: int = 16) -> dict:
    """Accuracy with its Wilson interval, ties, failures and order agreement of a judge (a
    comparer, or a request-level judge asked in both orders)."""
    compare = as_comparer(judge, cons)
    items = comparisons(rows, cons)
    judged = [j for s in range(0, len(items), chunk) for j in compare(items[s:s + chunk])]
    verdicts = [verdict(j.p_first, tie_margin) for j in judged]
    correct = sum(v == "first" for v in verdicts)
    valid = [j for j in judged if not j.failed]
    lo, hi = wilson_interval(correct, len(rows))
    by_aspect = {a: [v == "first" for v, r in zip(verdicts, rows) if r["aspect"] == a]
                 for a in ASPECTS}
    return {"pairs": len(rows), "correct": correct, "accuracy": correct / len(rows),
            "ci_low": lo, "ci_high": hi, "ties": verdicts.count("tie"),
            "failed": verdicts.count("failed"),
            "order_agreement": (sum(j.agree for j in valid) / len(valid)) if valid else None,
            "accuracy_by_aspect": {a: (sum(v) / len(v) if v else None)
                                   for a, v in by_aspect.items()}}


__all__ = ["VALIDATION_FILE", "comparisons", "judge_accuracy", "load_validation",
           "wilson_interval"]
