"""The three aspects of an answer and the UWO reward over their reward models.

An answer is judged as an *action* (the answer itself), by its *motivation* and by its
*consequence*; the last two are the policy's own replies to the constitution's follow-up
questions. Each aspect's reward model scores ``context + text`` from ``rm_inputs``: the same
rendering is used to build its preference pairs and to score PPO samples, so a model only ever
sees its own aspect.

PPO reward (paper's UWO, population variance over the K = 3 aspect models):
    r = mean_k z_k - lambda * var_k z_k,   z_k = (s_k - mean_k) / std_k
with each model's mean and std recorded on its reference set when it was trained.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..rewards.aggregate import aggregate_rewards, member_variance
from ..rewards.shaping import RewardShaper, ShapedReward
from .chat import ChatModel

ASPECTS = ("action", "motivation", "consequence")


def rm_inputs(aspect: str, prompt: str, answer: str, follow_ups: dict[str, str],
              questions: dict[str, str]) -> tuple[str, str]:
    """(context, text) that ``aspect``'s reward model scores as context + text."""
    context = f"User: {prompt}\n"
    if aspect == "action":
        return context, f"Assistant: {answer}"
    if aspect not in questions:
        raise KeyError(f"unknown aspect {aspect!r} (known: {', '.join(ASPECTS)})")
    return context, (f"Assistant: {answer}\nUser: {questions[aspect]}\n"
                     f"Assistant: {follow_ups[aspect]}")


def follow_up_replies(chat: ChatModel, prompts: list[str], answers: list[str],
                      questions: dict[str, str], max_new_tokens: int) -> dict[str, list[str]]:
    """The model's reply to each follow-up question after its answer: aspect -> [B] texts."""
    names = list(questions)
    convs = [[{"role": "user", "content": p}, {"role": "assistant", "content": a},
              {"role": "user", "content": questions[k]}]
             for k in names for p, a in zip(prompts, answers)]
    replies = chat.reply(convs, max_new_tokens)
    n = len(prompts)
    return {k: replies[i * n:(i + 1) * n] for i, k in enumerate(names)}


class AspectShaper(RewardShaper):
    """PPO reward from three aspect reward models combined by UWO.

    ``models[aspect](contexts, texts) -> [B]`` standardised scores; ``follow_ups(prompts,
    answers) -> {motivation: [B], consequence: [B]}`` asks the current policy; ``user_prompt``
    maps the chat-formatted PPO prompt back to the user's request."""

    def __init__(self, models: dict[str, Callable], follow_ups: Callable,
                 questions: dict[str, str], lam: float = 0.5,
                 user_prompt: Callable[[str], str] = lambda p: p):
        missing = [a for a in ASPECTS if a not in models]
        if missing:
            raise ValueError(f"no reward model for aspect(s) {', '.join(missing)}")
        self.models, self.follow_ups, self.questions = models, follow_ups, questions
        self.lam, self.user_prompt = lam, user_prompt
        self.source = lambda prompts, completions: self(prompts, completions).scores

    def parts(self, prompts: list[str], completions: list[str]
              ) -> tuple[torch.Tensor, dict[str, list[str]]]:
        """Per-aspect standardised scores [3, B] (rows in ``ASPECTS`` order) and the follow-ups."""
        users = [self.user_prompt(p) for p in prompts]
        completions = [c.strip() for c in completions]
        follow = self.follow_ups(users, completions)
        rows = []
        for aspect in ASPECTS:
            pairs = [rm_inputs(aspect, u, c, {k: v[i] for k, v in follow.items()},
                               self.questions) for i, (u, c) in enumerate(zip(users, completions))]
            scores = self.models[aspect]([p[0] for p in pairs], [p[1] for p in pairs])
            rows.append(torch.as_tensor(scores, dtype=torch.float32))
        return torch.stack(rows), follow

    def combine(self, parts: torch.Tensor) -> torch.Tensor:
        """UWO over the aspects: [3, B] -> [B]."""
        return aggregate_rewards(parts, "uwo", self.lam)

    def __call__(self, prompts: list[str], completions: list[str]) -> ShapedReward:
        scores, _ = self.parts(prompts, completions)
        stats = {f"score_{a}": scores[k].mean().item() for k, a in enumerate(ASPECTS)}
        stats["aspect_variance_mean"] = member_variance(scores).mean().item()
        return ShapedReward(self.combine(scores), stats=stats)


__all__ = ["ASPECTS", "AspectShaper", "follow_up_replies", "rm_inputs"]
