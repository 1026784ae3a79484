"""The AI judge: which of two texts is better, asked in both orders to cancel position bias.

A judge maps judge requests (user messages that show option (A) then option (B)) to
P(A is better) per request, or None when it gave no valid answer:

* ``LogprobJudge``: one forward pass; P(A) = softmax over the logits of the tokens "A" and "B"
  at the reply's first position (a soft label, never a failure);
* ``GenerateJudge``: a short greedy reply parsed strictly by ``parse_choice`` (1.0, 0.0 or None).

``judge_both_orders`` asks about (a, b) and (b, a): with f = P(first shown better | a first) and
g = P(first shown better | b first), the order-debiased P(a better) = (f + 1 - g) / 2, and the
two orders agree when f and g fall on opposite sides of 1/2.

Comparing two texts for an aspect and a virtue (``Comparison``) goes through a comparer:
``PairwiseComparer`` puts both orders of the constitution's judge request to one of the judges
above; ``PointwiseComparer`` asks the constitution's yes/no question about each text alone,
scores it s = log P(Yes) - log P(No) (softmax over the two labels' logits) and gives
P(a better) = sigmoid(s_a - s_b). Seeing one text at a time, it cannot have position bias (its
two "orders" always agree, except on an exact tie, which picks neither text).
``EmbeddingComparer`` needs no language model: it scores each text by the cosine similarity of
its sentence embedding to the virtue's anchor sentence. ``verdict`` turns P(a better) into
'first', 'second', 'tie' (within ``tie_margin`` of 1/2) or 'failed' (no valid answer in either
order); ties and failures are dropped by the caller and counted, never turned into a choice.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Protocol

from .chat import ChatModel
from .constitution import Constitution, Virtue

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


@dataclass(frozen=True)
class Comparison:
    """Which of ``first`` and ``second`` shows more of ``virtue`` for ``aspect``."""
    aspect: str
    virtue: Virtue
    question: str
    first: str
    second: str


class PairwiseComparer:
    """Both orders of the constitution's judge request, through a request-level judge."""

    def __init__(self, judge: Judge, cons: Constitution):
        self.judge, self.cons = judge, cons

    def __call__(self, items: list[Comparison]) -> list[PairJudgement]:
        ask = self.cons.judge
        return judge_both_orders(self.judge, [
            (ask(c.aspect, c.virtue, c.question, c.first, c.second),
             ask(c.aspect, c.virtue, c.question, c.second, c.first)) for c in items])


class PointwiseComparer:
    """Each text scored alone by the yes/no question; P(first better) = sigmoid(s1 - s2)."""

    LABELS = ("Yes", "No")

    def __init__(self, chat: ChatModel, cons: Constitution):
        self.chat, self.cons = chat, cons
        chat.label_ids(self.LABELS)  # fail early if a label is not one token

    def scores(self, requests: list[str]) -> list[float]:
        """log P(Yes) - log P(No) per request (the two labels' probabilities renormalised)."""
        p = self.chat.label_probs(_user(requests), self.LABELS).double().clamp_min(1e-30)
        return (p[:, 0].log() - p[:, 1].log()).tolist()

    def __call__(self, items: list[Comparison]) -> list[PairJudgement]:
        keys = {}
        for c in items:
            for text in (c.first, c.second):
                keys.setdefault((c.aspect, c.virtue, c.question, text), None)
        requests = [self.cons.pointwise(a, v, q, t) for a, v, q, t in keys]
        for key, s in zip(keys, self.scores(requests) if requests else []):
            keys[key] = s
        out = []
        for c in items:
            d = (keys[(c.aspect, c.virtue, c.question, c.first)]
                 - keys[(c.aspect, c.virtue, c.question, c.second)])
            p = 1.0 / (1.0 + math.exp(-d)) if d > -700 else 0.0
            out.append(PairJudgement(p, 1.0 - p))
        return out


class EmbeddingComparer:
    """Each text scored alone by its sentence embedding's closeness to the virtue:
    s = cos(e(text), e(anchor)), with the anchor the constitution's ``embedding_anchor`` (by
    default "{virtue}: {description}."); P(first better) = sigmoid((s1 - s2) / temperature).
    No language model and no position bias. It rewards text that is about the virtue, so it is
    easier to game than an LM judge: an answer stuffed with words close to the virtue's
    description scores high whether or not it shows the virtue.
    ``encode``: texts -> [N, d] unit vectors (``on_topic.SentenceEncoder``)."""

    TEMPERATURE = 0.05  # cosine differences of sentence embeddings are a few hundredths

    def __init__(self, encode, cons: Constitution):
        self.encode, self.cons = encode, cons
        self.anchors: dict = {}   # virtue name -> its anchor's [d] embedding, encoded once

    def _anchor(self, v: Virtue):
        if v.name not in self.anchors:
            self.anchors[v.name] = self.encode([self.cons.anchor(v)])[0]
        return self.anchors[v.name]

    def __call__(self, items: list[Comparison]) -> list[PairJudgement]:
        if not items:
            return []
        texts = list(dict.fromkeys(t for c in items for t in (c.first, c.second)))
        emb = dict(zip(texts, self.encode(texts)))
        out = []
        for c in items:
            a = self._anchor(c.virtue)
            d = ((emb[c.first] - emb[c.second]) @ a).item() / self.TEMPERATURE
            if not math.isfinite(d):
                out.append(PairJudgement(None, None))
                continue
            p = 1.0 / (1.0 + math.exp(-d))  # |d| <= 2 / TEMPERATURE = 40 for unit vectors
            out.append(PairJudgement(p, 1.0 - p))
        return out


def as_comparer(judge, cons: Constitution):
    """A comparer as is; a request-level judge wrapped in ``PairwiseComparer``."""
    return judge if isinstance(judge, (PairwiseComparer, PointwiseComparer,
                                       EmbeddingComparer)) else PairwiseComparer(judge, cons)


def verdict(p_first: float | None, tie_margin: float) -> str:
    """'first', 'second', 'tie' (|p - 1/2| <= tie_margin) or 'failed' (p is None)."""
    if p_first is None:
        return "failed"
    if abs(p_first - 0.5) <= tie_margin + 1e-12:  # (f + 1 - g) / 2 with f = g rounds off 1/2
        return "tie"
    return "first" if p_first > 0.5 else "second"


__all__ = ["Comparison", "EmbeddingComparer", "GenerateJudge", "Judge", "LABELS",
           "LogprobJudge", "PairJudgement", "PairwiseComparer", "PointwiseComparer",
           "as_comparer", "judge_both_orders", "make_judge", "parse_choice", "verdict"]


def make_judge(chat, mode: str, cons=None, encode=None):
    """The judge of ``mode``: a request-level judge (logprob, generate), the pointwise comparer
    (the constitution's yes/no question to ``chat``) or the embedding comparer (``encode``, a
    sentence encoder, and the constitution's anchors; no chat model)."""
    if mode == "pointwise":
        return PointwiseComparer(chat, cons)
    if mode == "embedding":
        return EmbeddingComparer(encode, cons)

    return LogprobJudge(chat) if mode == "logprob" else GenerateJudge(chat)
