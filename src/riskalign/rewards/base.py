"""The reward protocol: score a batch of (prompt, completion) pairs, return a float tensor [B]."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


class RewardError(ValueError):
    """A reward source failed or returned something unusable. The message names the sample or
    the batch; ``where`` (e.g. 'batch of 16') gains the iteration when the trainer knows it."""

    def __init__(self, message: str, where: str | None = None):
        super().__init__(message)
        self.message, self.where, self.iteration = message, where, None

    def __str__(self) -> str:
        parts = [f"iteration {self.iteration}"] if self.iteration is not None else []
        parts += [self.where] if self.where else []
        return self.message + (f" ({', '.join(parts)})" if parts else "")


@runtime_checkable
class RewardSource(Protocol):
    def __call__(self, prompts: list[str], completions: list[str]) -> torch.Tensor: ...


def join(prompt: str, completion: str) -> str:
    """The full text a 'full'-target reward scores: the completion continues the prompt."""
    return prompt + completion


class TextReward:
    """Base for rewards computed from one text per sample (the full text or the completion)."""

    def __init__(self, target: str = "full", sign: float = 1.0):
        self.target = target
        self.sign = sign

    def score_texts(self, texts: list[str]) -> list[float]:
        raise NotImplementedError

    def __call__(self, prompts: list[str], completions: list[str]) -> torch.Tensor:
        texts = ([join(p, c) for p, c in zip(prompts, completions)] if self.target == "full"
                 else list(completions))
        return torch.tensor(self.score_texts(texts), dtype=torch.float32) * self.sign


def checked_scores(source: RewardSource, prompts: list[str], completions: list[str]) -> torch.Tensor:
    """Call ``source`` and insist on a finite float tensor of shape [B]."""
    out = source(prompts, completions)
    try:
        out = torch.as_tensor(out).detach().to(torch.float32).cpu()
    except (TypeError, ValueError, RuntimeError):
        raise RewardError(f"reward returned {type(out).__name__}, not numbers",
                          f"batch of {len(prompts)}") from None
    if out.shape != (len(prompts),):
        raise RewardError(f"reward returned shape {tuple(out.shape)} for a batch of "
                          f"{len(prompts)} samples; it must return one float per sample")
    bad = (~torch.isfinite(out)).nonzero().flatten().tolist()
    if bad:
        i = bad[0]
        text = (prompts[i] + completions[i])[:60].replace("\n", " ")
        raise RewardError(f"reward is {out[i].item()} for sample {i} ({text!r}); rewards must be "
                          f"finite")
    return out


def prompt_scores(source: RewardSource, prompts: list[str]) -> torch.Tensor:
    """The reward of each prompt alone (empty completion): how hard the prompt is."""
    return checked_scores(source, prompts, [""] * len(prompts))


class PromptScoreCache:
    """``prompt_scores`` with each distinct prompt scored once: call it with a batch's prompts
    (repeats allowed) to get their scores [B]. Training passes over the same prompts many times."""

    def __init__(self, source: RewardSource):
        self.source, self.cache = source, {}

    def __call__(self, prompts: list[str]) -> torch.Tensor:
        new = [p for p in dict.fromkeys(prompts) if p not in self.cache]
        if new:
            self.cache.update(zip(new, prompt_scores(self.source, new).tolist()))
        return torch.tensor([self.cache[p] for p in prompts], dtype=torch.float32)
