"""Rollouts: sample completions, score them, and compute old/ref log-probs and values.

Sequences are laid out as ``[prompt, left-padded to P | response, right-padded to T]``. The
response mask marks generated tokens up to and including the first EOS (the EOS id may equal the
pad id, as in SmolLM2, so the mask comes from positions, never from comparing with pad).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields

import torch

from ..models import ActorCritic, reference_logprobs
from ..rewards.shaping import RewardShaper, checked_shaped
from .generation import GenerationSettings, Generator, HFGenerator


@dataclass
class Rollout:
    """One batch of trajectories. Tensors: ids/attention [B, P+T]; per-token [B, T] (log-probs,
    values, and the policy's entropy at the sampling temperature, before any top-k/top-p cut);
    scores [B]; optional per-sample KL scale and policy-loss weight [B] from the reward
    shaper."""

    prompts: list[str]
    completions: list[str]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor
    scores: torch.Tensor
    logprobs: torch.Tensor
    ref_logprobs: torch.Tensor
    values: torch.Tensor
    entropy: torch.Tensor
    kl_scale: torch.Tensor | None = None
    weight: torch.Tensor | None = None
    reward_stats: dict = field(default_factory=dict)

    @property
    def response_len(self) -> int:
        return self.response_mask.shape[1]

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, idx: torch.Tensor) -> "Rollout":
        """The trajectories at ``idx`` (a LongTensor), in that order."""
        picked = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                picked[f.name] = v[idx]
            elif isinstance(v, list):
                picked[f.name] = [v[i] for i in idx.tolist()]
            else:
                picked[f.name] = v
        return Rollout(**picked)


def unpadded_span(attention_mask: torch.Tensor, response_mask: torch.Tensor) -> tuple[int, int]:
    """(first column, response length) of the smallest window that holds every row's tokens.

    attention_mask [b, P + T], response_mask [b, T]: columns of left padding that all rows share
    and response columns after every row's last valid token carry nothing a valid token sees
    (positions come from the mask, attention is causal), so ``input_ids[:, first:P + length]``
    scores the same valid tokens with less work. Column P - 1, which predicts the first response
    token, is always kept.
    """
    T = response_mask.shape[1]
    P = attention_mask.shape[1] - T
    used = attention_mask[:, :P].bool().any(0)
    first = min(int(used.long().argmax()) if bool(used.any()) else P, P - 1)
    valid = response_mask.bool().any(0).nonzero()
    length = int(valid.max()) + 1 if len(valid) else 1
    return first, length


def decode_completions(tokenizer, input_ids: torch.Tensor, response_mask: torch.Tensor) -> list[str]:
    T = response_mask.shape[1]
    return [tokenizer.decode(row[m.bool()], skip_special_tokens=True)
            for row, m in zip(input_ids[:, -T:], response_mask)]


@torch.no_grad()
def collect(policy: ActorCritic, ref, tokenizer, shaper: RewardShaper, prompts: list[str],
            settings: GenerationSettings, forward_batch_size: int,
            timings: dict[str, float], generator: Generator | None = None) -> Rollout:
    """Generate (with ``generator``, default Hugging Face ``generate``), score, and run the
    no-grad policy/value and reference forward passes."""
    t0 = time.perf_counter()
    input_ids, attention_mask, mask = (generator or HFGenerator()).generate(
        policy, tokenizer, prompts, settings, forward_batch_size)
    t1 = time.perf_counter()
    completions = decode_completions(tokenizer, input_ids, mask)
    shaped = checked_shaped(shaper(prompts, completions), len(prompts))
    t2 = time.perf_counter()
    T = mask.shape[1]
    logprobs, values, entropy, ref_logprobs = [], [], [], []
    t_ref = 0.0
    policy.eval()
    for i in range(0, len(prompts), forward_batch_size):
        ids, att = input_ids[i:i + forward_batch_size], attention_mask[i:i + forward_batch_size]
        out = policy(ids, att, T, settings.temperature, with_entropy=True)
        logprobs.append(out["logprobs"])
        values.append(out["values"])
        entropy.append(out["entropy"])
        t = time.perf_counter()
        ref_logprobs.append(reference_logprobs(policy, ref, ids, att, T, settings.temperature))
        t_ref += time.perf_counter() - t
    policy.train()
    t3 = time.perf_counter()
    timings.update(generate=t1 - t0, score=t2 - t1, forward=t3 - t2,
                   forward_policy=t3 - t2 - t_ref, forward_ref=t_ref)
    m, device = mask.float(), mask.device  # reward sources score on the CPU

    def here(t):
        return None if t is None else t.to(device)

    return Rollout(prompts, completions, input_ids, attention_mask, mask, here(shaped.scores),
                   torch.cat(logprobs) * m, torch.cat(ref_logprobs) * m, torch.cat(values) * m,
                   torch.cat(entropy) * m, here(shaped.kl_scale), here(shaped.weight),
                   shaped.stats)
