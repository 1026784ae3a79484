"""Perplexity, two ways (they answer different questions):

* ``reference_perplexity``: fixed human reference texts (e.g. positive held-out reviews) under the
  model being evaluated, with a sliding window as in the RA-RLHF code. Low = the tuned model still
  assigns high probability to natural text of the target kind (fluency kept).
* ``generation_perplexity``: each model's own completions under one fixed scorer model (default:
  the base policy), conditioned on the prompt. Low = the generations look natural to an
  independent LM; reward hacking into odd text shows up as a rise.

Both are exp(total NLL / number of scored tokens) over all texts (token-weighted).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .. import precision


@torch.no_grad()
def _nll(lm, sequences: list[list[int]], first_target: list[int], batch_size: int
         ) -> tuple[float, int]:
    """Sum of -log p(token) over positions t >= first_target[i] (t >= 1) of each sequence, and
    the number of such tokens. Sequences are right-padded per batch."""
    total, count = 0.0, 0
    device = next(lm.parameters()).device
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    for s in range(0, len(order), batch_size):
        chunk = [i for i in order[s:s + batch_size] if len(sequences[i]) >= 2]
        if not chunk:
            continue
        width = max(len(sequences[i]) for i in chunk)
        ids = torch.zeros(len(chunk), width, dtype=torch.long)
        target = torch.zeros(len(chunk), width, dtype=torch.bool)
        for r, i in enumerate(chunk):
            seq = sequences[i]
            ids[r, :len(seq)] = torch.tensor(seq)
            target[r, max(1, first_target[i]):len(seq)] = True
        attn = (torch.arange(width) < torch.tensor([len(sequences[i]) for i in chunk])[:, None])
        ids, attn = ids.to(device), attn.to(device)
        with precision.autocast(device):
            logits = lm(input_ids=ids, attention_mask=attn.long(), use_cache=False).logits[:, :-1]
        nll = F.cross_entropy(logits.float().transpose(1, 2), ids[:, 1:], reduction="none")
        mask = target[:, 1:].to(device)
        total += nll[mask].double().sum().item()
        count += int(mask.sum())
    return total, count


def _ppl(total: float, count: int) -> float:
    return math.exp(total / count) if count else float("nan")


def sliding_windows(ids: list[int], window: int, stride: int) -> list[tuple[list[int], int]]:
    """Split one token list into (segment, first_target) pairs: each segment is at most
    ``window`` tokens, consecutive segments start ``stride`` apart, and each token is scored
    exactly once, in the first segment where it has the most context."""
    if not 1 <= stride < window:  # stride == window would leave each later segment's first
        raise ValueError(f"stride must be in [1, window={window}), got {stride}")  # token unscored
    out, scored_to = [], 0
    for begin in range(0, max(1, len(ids)), stride):
        end = min(begin + window, len(ids))
        seg = ids[begin:end]
        out.append((seg, scored_to - begin if scored_to > begin else 0))
        scored_to = end
        if end == len(ids):
            break
    return out


def reference_perplexity(lm, tokenizer, texts: list[str], window: int = 128, stride: int = 64,
                         batch_size: int = 8) -> float:
    """Sliding-window perplexity of ``texts`` under ``lm``."""
    seqs, starts = [], []
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        for seg, first in sliding_windows(ids, window, stride):
            seqs.append(seg)
            starts.append(first)
    return _ppl(*_nll(lm, seqs, starts, batch_size))


def generation_perplexity(lm, tokenizer, prompts: list[str], completions: list[str],
                          batch_size: int = 8) -> float:
    """Perplexity of the completion tokens given their prompt, under ``lm`` (the scorer)."""
    p_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    c_ids = tokenizer(completions, add_special_tokens=False)["input_ids"]
    seqs = [p + c for p, c in zip(p_ids, c_ids)]
    return _ppl(*_nll(lm, seqs, [len(p) for p in p_ids], batch_size))


__all__ = ["generation_perplexity", "reference_perplexity", "sliding_windows"]
