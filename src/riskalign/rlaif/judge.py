"""The AI judge: which of two texts is better, asked in both orders to cancel position bias.

A judge maps judge requests (user messages that show option (A) then option (B)) to
P(A is better) per request, or None when it gave no valid answer:

* ``LogprobJudge``: one forward pass; P(A) = softmax over the logits of the tokens "A" and "B"
  at the reply's first position (a soft label, never a failure);
* ``GenerateJudge``: a short greedy reply parsed strictly by ``parse_choice`` (1.0, 0.0 or None).

``judge_both_orders`` asks about (a, b) and (b, a): with f = P(first shown better | a first) and
g = P(first shown better | b first), the order-debiased P(a better) = (f + 1 - g) / 2, and the
two orders agree when f and g fall on opposite sides of 1/2. ``verdict`` turns P(a better) into
'first', 'second', 'tie' (within ``tie_margin`` of 1/2) or 'failed' (no valid answer in either
order); ties and failures are dropped by the caller and counted, never turned into a choice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from .chat import ChatModel

LABELS = ("A", "B")
_CHOICE = re.compile(r"^\W*(?i:(?:the\s+)?(?:answer|option|response|choice)\s*(?:is)?\s*:?\s*)?"
                     r"\(?([AB])\)?(?![A-Za-z0-9])")
_OTHER = {"A": re.compile(r"(?<![A-Za-z0-9])\(?B\)?(?![A-Za-z0-9])"),
          "B": re.compile(r"(?<![A-Za-z0-9])\(?A\)?(?![A-Za-z0-9])")}


def parse_choice(text: str) -> str | None:
    """'A' or 'B' when the reply opens with exactly one of them ("B", "(A).", "Answer: B"), and
    the other label does not appear as a word anywhere; otherwise None."""
    m = _CHOICE.match(text.strip())
    if not m:
        return None
    choice = m.group(1).upper()
    return None if _OTHER[choice].search(text[m.end():]) else choice


class Judge(Protocol):
    def __call__(self, requests: list[str]) -> list[float | None]: ...


def _user(requests: list[str]) -> list[list[dict]]:
    return [[{"role": "user", "content": r}] for r in requests]


class LogprobJudge:
    """P(A) from the next-token probabilities of the two labels (one forward per request)."""

    def __init__(self, chat: ChatModel):
        self.chat = chat
        chat.label_ids(LABELS)  # fail early if a label is not one token

    def __call__(self, requests: list[str]) -> list[float | None]:
        return self.chat.label_probs(_user(requests), LABELS)[:, 0].tolist()


class GenerateJudge:
    """P(A) = 1 or 0 from a short greedy reply parsed by ``parse_choice``; None if unparseable."""

    def __init__(self, chat: ChatModel, max_new_tokens: int = 6):
        self.chat, self.max_new_tokens = chat, max_new_tokens

    def __call__(self, requests: list[str]) -> list[float | None]:
        replies = self.chat.reply(_user(requests), self.max_new_tokens, sample=False)
        return [{"A": 1.0, "B": 0.0}.get(parse_choice(r)) for r in replies]


@dataclass(frozen=True)
class PairJudgement:
    forward: float | None    # P(first shown better) with a shown first
    backward: float | None   # P(first shown better) with b shown first

    @property
    def failed(self) -> bool:
        return self.forward is None or self.backward is None

    @property
    def p_first(self) -> float | None:
        """Order-debiased P(a better) = (f + 1 - g) / 2."""
        return None if self.failed else (self.forward + 1.0 - self.backward) / 2

    @property
    def agree(self) -> bool | None:
        """Both orders pick the same text (None when an order failed)."""
        if self.failed:
            return None
        return (self.forward - 0.5) * (self.backward - 0.5) < 0


def judge_both_orders(judge: Judge, requests: list[tuple[str, str]]) -> list[PairJudgement]:
    """``requests[i]`` = (the request showing a first, the same request showing b first); all
    of them go to the judge in one call."""
    asked = [r[0] for r in requests] + [r[1] for r in requests]
    p = list(judge(asked))
    if len(p) != len(asked):
        raise ValueError(f"judge returned {len(p)} answers for {len(asked)} requests")
    n = len(requests)
    return [PairJudgement(p[i], p[n + i]) for i in range(n)]


def verdict(p_first: float | None, tie_margin: float) -> str:
    """'first', 'second', 'tie' (|p - 1/2| <= tie_margin) or 'failed' (p is None)."""
    if p_first is None:
        return "failed"
    if abs(p_first - 0.5) <= tie_margin:
        return "tie"
    return "first" if p_first > 0.5 else "second"


__all__ = ["GenerateJudge", "Judge", "LABELS", "LogprobJudge", "PairJudgement",
           "judge_both_orders", "parse_choice", "verdict"]
