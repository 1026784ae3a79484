"""``riskalign generate``: sample continuations of prompts, optionally scored."""

from __future__ import annotations

import torch

from ..config import RewardConfig
from ..eval.sampling import sample_and_score
from ..models import ActorCritic, check_context, load_causal_lm, load_tokenizer
from ..ppo.rollout import GenerationSettings
from ..rewards import build_reward


def generate(model: str, prompts: list[str], max_new_tokens: int = 32,
             temperature: float = 1.0, reward: str | None = None, seed: int = 0) -> list[dict]:
    """One ``{"prompt", "completion"[, "score"]}`` per prompt, sampled with ``seed``."""
    if not prompts:
        raise ValueError("give --prompt or prompts on standard input")
    empty = [i for i, p in enumerate(prompts, start=1) if not p.strip()]
    if empty:
        raise ValueError(f"--prompt: prompt {empty[0]} is empty")
    if max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
    if not temperature > 0:
        raise ValueError(f"--temperature must be > 0, got {temperature}")
    tok = load_tokenizer(model)
    longest = max(len(tok(p, add_special_tokens=False).input_ids) for p in prompts)
    check_context(tok, longest + max_new_tokens, "the longest prompt + --max-new-tokens")
    policy = ActorCritic(load_causal_lm(model))
    gen = GenerationSettings(max_new_tokens, 0, temperature)
    source = build_reward(RewardConfig(kind=reward)) if reward else None
    completions, scores = sample_and_score(
        policy, tok, source or (lambda p, c: torch.zeros(len(p))), prompts, gen, 16, seed)
    return [{"prompt": p, "completion": c, **({"score": s} if source else {})}
            for p, c, s in zip(prompts, completions, scores.tolist())]
