"""Any Hugging Face sequence classifier as a reward: one logit (or label) times a sign.

Covers ``lvwerra/distilbert-imdb`` (label POSITIVE, sign +1) and ``unitary/toxic-bert``
(label toxic, sign -1) for users who have them locally or in the hub cache.
"""

from __future__ import annotations

import torch

from .. import precision
from ..assets import load_error, resolve_model
from .base import TextReward


class ClassifierReward(TextReward):
    def __init__(self, model: str, label: str | None = None, target: str = "full",
                 sign: float = 1.0, batch_size: int = 32, trust_remote_code: bool = False,
                 max_length: int = 512):
        super().__init__(target, sign)
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = resolve_model(model)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
            self.model = AutoModelForSequenceClassification.from_pretrained(
                path, trust_remote_code=trust_remote_code).eval()
        except Exception as e:  # any damage to the folder, named in one line
            raise load_error(model, e) from None
        self.index = self._label_index(label)
        self.batch_size = batch_size
        self.max_length = max_length

    def _label_index(self, label: str | None) -> int:
        n = self.model.config.num_labels
        if label is None:
            return n - 1
        if label.lstrip("-").isdigit():
            i = int(label)
            if not -n <= i < n:
                raise ValueError(f"reward.label: logit index {i} out of range for {n} labels")
            return i % n
        names = {v.lower(): int(k) for k, v in self.model.config.id2label.items()}
        if label.lower() not in names:
            raise ValueError(f"reward.label: '{label}' is not a label of the classifier "
                             f"(labels: {', '.join(self.model.config.id2label.values())})")
        return names[label.lower()]

    @torch.inference_mode()
    def score_texts(self, texts: list[str]) -> list[float]:
        out: list[float] = []
        for i in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(texts[i:i + self.batch_size], padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
            with precision.autocast("cpu"):
                out += self.model(**enc).logits[:, self.index].float().tolist()
        return out
