"""Held-out scoring: sample continuations with a fixed seed and report the mean reward."""

from __future__ import annotations

import torch

from ..models import ActorCritic, gpu_of
from ..ppo.generation import GenerationSettings, Generator, generate
from ..ppo.rollout import decode_completions
from ..rewards import checked_scores


@torch.no_grad()
def sample_and_score(policy: ActorCritic, tokenizer, reward, prompts: list[str],
                     gen: GenerationSettings, batch_size: int, seed: int,
                     generator: Generator | None = None) -> tuple[list[str], torch.Tensor]:
    """Completions and their scores [N]; the global RNG (CPU, and the policy's GPU) is left
    untouched. ``generator`` (e.g. a trainer's, with its bf16 copy) samples instead of
    ``generate``."""
    with torch.random.fork_rng(devices=gpu_of(policy)):
        torch.manual_seed(seed)
        sample = generator.generate if generator is not None else generate
        ids, _, mask = sample(policy, tokenizer, prompts, gen, batch_size)
    completions = decode_completions(tokenizer, ids, mask)
    return completions, checked_scores(reward, prompts, completions)
