"""How rollouts are sampled: the ``Generator`` interface and its Hugging Face implementation.

The trainer only needs token tensors laid out as ``[prompt, left-padded to P | response,
right-padded to T]`` with a response mask, so any engine that returns those (a vLLM server, say)
can replace ``HFGenerator`` without touching the trainer. ``update_weights`` is called after each
PPO update, for engines that hold their own copy of the policy.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Protocol

import torch

from .. import precision
from ..precision import GenerationCopy


@dataclass
class GenerationSettings:
    max_new_tokens: int
    min_new_tokens: int = 0
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0


class Generator(Protocol):
    def generate(self, policy, tokenizer, prompts: list[str], settings: GenerationSettings,
                 batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(input_ids [B, P+T], attention_mask [B, P+T], response_mask [B, T])."""
        ...

    def update_weights(self, policy) -> None:
        """The policy changed (after a PPO update)."""
        ...


def response_mask_from_tokens(response: torch.Tensor, eos_token_id: int | None) -> torch.Tensor:
    """1 up to and including the first EOS of each row, 0 after: [B, T] -> [B, T] (long)."""
    if eos_token_id is None:
        return torch.ones_like(response)
    is_eos = (response == eos_token_id).long()
    eos_before = torch.cumsum(is_eos, dim=1) - is_eos  # EOS strictly before this position
    return (eos_before == 0).long()


@torch.no_grad()
def generate(policy, tokenizer, prompts: list[str], settings: GenerationSettings,
             batch_size: int, sampler=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample completions with ``sampler`` (a causal LM; default: the policy's own LM; in bf16
    mode a ``precision.GenerationCopy`` of it). Returns (input_ids [B, P+T], attention_mask
    [B, P+T], response_mask [B, T]); P is the longest prompt, T the longest response in the
    whole batch."""
    from transformers import GenerationConfig

    if sampler is None:
        bf16_copy = precision.mode() == "bf16" and precision.can_copy(policy.lm)
        sampler = GenerationCopy(policy.lm).model if bf16_copy else policy.lm
    enc = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left",
                    add_special_tokens=False).to(policy.device)
    gen_cfg = GenerationConfig(
        do_sample=True, temperature=settings.temperature, top_k=settings.top_k,
        top_p=settings.top_p, max_new_tokens=settings.max_new_tokens,
        min_new_tokens=settings.min_new_tokens, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, use_cache=True)
    P = enc.input_ids.shape[1]
    responses = []
    was_training = policy.training
    policy.eval()
    for i in range(0, len(prompts), batch_size):
        # autocast only for a float32 sampler in bf16 mode (the 4-bit case); a bf16 copy runs as is
        ctx = (precision.autocast(enc.input_ids.device) if sampler is policy.lm
               else contextlib.nullcontext())
        with ctx:
            out = sampler.generate(input_ids=enc.input_ids[i:i + batch_size],
                                   attention_mask=enc.attention_mask[i:i + batch_size],
                                   generation_config=gen_cfg)
        responses.append(out[:, P:])
    policy.train(was_training)
    T = max(r.shape[1] for r in responses)
    pad = tokenizer.pad_token_id
    response = torch.cat([torch.nn.functional.pad(r, (0, T - r.shape[1]), value=pad)
                          for r in responses])
    mask = response_mask_from_tokens(response, tokenizer.eos_token_id)
    response = torch.where(mask.bool(), response, torch.full_like(response, pad))
    input_ids = torch.cat([enc.input_ids, response], dim=1)
    attention_mask = torch.cat([enc.attention_mask, torch.ones_like(response)], dim=1)
    return input_ids, attention_mask, mask


class HFGenerator:
    """Sampling with ``transformers``' ``generate`` (KV cache on): with the policy itself in
    fp32 mode; in bf16 mode with a bf16 copy made on first use and refreshed after each update."""

    copy: GenerationCopy | None = None

    def generate(self, policy, tokenizer, prompts: list[str], settings: GenerationSettings,
                 batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        bf16_copy = precision.mode() == "bf16" and precision.can_copy(policy.lm)
        if bf16_copy and self.copy is None:
            self.copy = GenerationCopy(policy.lm)
        sampler = self.copy.model if bf16_copy else policy.lm
        return generate(policy, tokenizer, prompts, settings, batch_size, sampler)

    def update_weights(self, policy) -> None:
        if self.copy is not None:
            self.copy.refresh(policy.lm)


__all__ = ["GenerationSettings", "Generator", "HFGenerator", "generate",
           "response_mask_from_tokens"]
