"""Rewards that need no neural network: VADER sentiment and alt-profanity-check."""

from __future__ import annotations

from .base import TextReward


class VaderReward(TextReward):
    """VADER compound sentiment in [-1, 1] (Hutto & Gilbert 2014)."""

    def __init__(self, target: str = "full", sign: float = 1.0):
        super().__init__(target, sign)
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()

    def score_texts(self, texts: list[str]) -> list[float]:
        return [self._analyzer.polarity_scores(t)["compound"] for t in texts]


class NonToxicityReward(TextReward):
    """1 - 2 p(offensive) in [-1, 1], with p from alt-profanity-check's linear model."""

    def score_texts(self, texts: list[str]) -> list[float]:
        from profanity_check import predict_prob

        if not texts:
            return []
        return [1.0 - 2.0 * float(p) for p in predict_prob(texts)]
