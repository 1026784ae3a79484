"""A reward model: any Hugging Face backbone with a scalar head, scoring ``prompt + answer``.

``AutoModelForSequenceClassification(num_labels=1)`` gives both kinds the issue asks for: an
encoder (the offline default all-MiniLM-L6-v2, ``minilm``) reads the [CLS] pooling; a decoder
(e.g. the policy or SFT model) gets its LM head replaced by a linear head read at the last real
token. The head is initialised under ``torch.manual_seed(seed)``, so ensemble members that differ
only in seed start from different heads.
"""

from __future__ import annotations

import torch

from .. import precision
from ..assets import load_error, resolve_model


def load_reward_model(name_or_path: str, seed: int | None = None, trust_remote_code: bool = False):
    """(model, tokenizer) with a 1-output head; a saved reward model reloads with its head."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_model(name_or_path)
    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            model = AutoModelForSequenceClassification.from_pretrained(
                path, num_labels=1, trust_remote_code=trust_remote_code, dtype=torch.float32)
    except Exception as e:  # any damage to the folder, named in one line
        raise load_error(name_or_path, e) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.config.pad_token_id = tok.pad_token_id
    return model, tok


def reward_forward(model, tok, texts: list[str], max_length: int) -> torch.Tensor:
    """Scalar rewards [B] for ``texts`` (right-padded, truncated to ``max_length`` tokens), on
    the model's device."""
    enc = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_length,
              padding_side="right").to(next(model.parameters()).device)
    with precision.autocast(enc.input_ids.device):
        return model(**enc).logits[:, 0].float()


@torch.no_grad()
def score_texts(model, tok, texts: list[str], max_length: int = 256,
                batch_size: int = 32) -> torch.Tensor:
    """Rewards [N] (on the CPU) in inference mode, ``batch_size`` texts per forward pass."""
    model.eval()
    parts = [reward_forward(model, tok, texts[i:i + batch_size], max_length)
             for i in range(0, len(texts), batch_size)]
    return torch.cat(parts).cpu() if parts else torch.zeros(0)


__all__ = ["load_reward_model", "reward_forward", "score_texts"]
