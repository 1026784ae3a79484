"""What a task is: prompt texts with class labels, a default reward, and token budgets.

A task's loader returns raw documents (``Example``: text + label). ``build_prompts`` turns them
into prompts by cutting each text to the first ``prompt_tokens`` policy tokens; documents that
are not longer than the budget are skipped (there would be nothing left to continue).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Callable


class DataError(ValueError):
    """A dataset is empty, unreadable or lacks a needed column. The message names the file."""


@dataclass(frozen=True)
class Example:
    text: str
    label: int | None = None  # 1 = positive / non-toxic, 0 = negative / toxic, None = unknown


@dataclass
class TaskSpec:
    """A built-in task's defaults and its loader ``load(data_path) -> (train, test)``."""

    name: str
    load: Callable[[str | None], tuple[list[Example], list[Example]]]
    prompt_tokens: int
    new_tokens: int
    reward: str
    label_names: tuple[str, str] = ("negative", "positive")
    description: str = ""
    tail_threshold: float = 0.0  # prompts scoring <= this (default reward) count as hard in eval


@dataclass
class PromptSet:
    """Prompts ready for generation. ``texts[i]`` is the decoded cut prompt; ``labels[i]`` its
    document's class; ``documents[i]`` the full source text (reference texts for SFT/perplexity)."""

    texts: list[str]
    labels: list[int | None]
    documents: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx) -> "PromptSet":
        idx = list(idx)
        return PromptSet([self.texts[i] for i in idx], [self.labels[i] for i in idx],
                         [self.documents[i] for i in idx] if self.documents else [])


@dataclass
class Task:
    spec: TaskSpec
    train: PromptSet
    test: PromptSet
    prompt_tokens: int
    new_tokens: int
    min_new_tokens: int
    validation: PromptSet | None = None  # held out of train when task.validation > 0

    @property
    def name(self) -> str:
        return self.spec.name


_BR = re.compile(r"<br\s*/?>", re.I)
_WS = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Unescape HTML entities, drop <br /> tags, surrounding quotes and repeated whitespace."""
    text = html.unescape(html.unescape(text))
    text = _BR.sub(" ", text)
    text = _WS.sub(" ", text).strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    return text


def build_prompts(examples: list[Example], tokenizer, prompt_tokens: int, where: str) -> PromptSet:
    """Cut each text to its first ``prompt_tokens`` tokens (no special tokens)."""
    if not examples:
        raise DataError(f"{where}: no examples")
    texts, labels, docs = [], [], []
    # only the first prompt_tokens + 1 tokens matter (is the text longer than the budget?)
    cut = ({"truncation": True, "max_length": prompt_tokens + 1}
           if getattr(tokenizer, "truncation_side", "right") == "right" else {})
    ids = tokenizer([e.text for e in examples], add_special_tokens=False, **cut)["input_ids"]
    for ex, tok_ids in zip(examples, ids):
        if len(tok_ids) <= prompt_tokens:
            continue
        texts.append(tokenizer.decode(tok_ids[:prompt_tokens]))
        labels.append(ex.label)
        docs.append(ex.text)
    if not texts:
        raise DataError(f"{where}: no text is longer than the prompt budget of {prompt_tokens} "
                        f"tokens ({len(examples)} examples read)")
    return PromptSet(texts, labels, docs)
