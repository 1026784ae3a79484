"""A causal LM used through its chat template: sampled replies and next-token label probabilities.

Conversations are lists of ``{"role": "user" | "assistant", "content": str}``. Prompts are
left-padded so that a batch ends where the reply begins.
"""

from __future__ import annotations

import contextlib

import torch

from .. import precision
from ..models import position_ids_from_mask


class ChatTemplateError(ValueError):
    """The model's tokenizer has no chat template."""


def chat_prompt(tokenizer, messages: list[dict], name: str = "model") -> str:
    """The text the model continues to answer ``messages``: [..., user] -> '<template>assistant\\n'."""
    if not getattr(tokenizer, "chat_template", None):
        raise ChatTemplateError(f"{name}: the tokenizer has no chat template; RLAIF needs a chat "
                                f"model (e.g. an *-Instruct checkpoint) for this role")
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as e:  # jinja2 syntax or runtime errors in the model's own template
        raise ChatTemplateError(f"{name}: its chat template fails ({type(e).__name__}: "
                                f"{' '.join(str(e).split())})") from None


class ChatModel:
    """Generation and label probabilities for one role (policy, reviser or judge)."""

    def __init__(self, lm, tokenizer, name: str = "model", batch_size: int = 16,
                 temperature: float = 0.7, top_p: float = 0.95):
        self.lm, self.tok, self.name = lm, tokenizer, name
        self.batch_size, self.temperature, self.top_p = batch_size, temperature, top_p

    def prompt(self, messages: list[dict]) -> str:
        return chat_prompt(self.tok, messages, self.name)

    def _encode(self, texts: list[str]):
        enc = self.tok(texts, return_tensors="pt", padding=True, padding_side="left",
                       add_special_tokens=False)
        return enc.to(getattr(self.lm, "device", "cpu"))

    @contextlib.contextmanager
    def _eval(self):
        was = self.lm.training
        self.lm.eval()
        try:
            with torch.no_grad(), precision.autocast(getattr(self.lm, "device", "cpu")):
                yield
        finally:
            self.lm.train(was)

    def reply(self, conversations: list[list[dict]], max_new_tokens: int,
              sample: bool = True, min_new_tokens: int = 1) -> list[str]:
        """One reply per conversation (sampled, or greedy with ``sample=False``), stripped."""
        from transformers import GenerationConfig

        cfg = GenerationConfig(do_sample=sample, temperature=self.temperature if sample else None,
                               top_p=self.top_p if sample else None, top_k=0 if sample else None,
                               max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens,
                               eos_token_id=self.tok.eos_token_id,
                               pad_token_id=self.tok.pad_token_id)
        texts = [self.prompt(m) for m in conversations]
        out = []
        with self._eval():
            for i in range(0, len(texts), self.batch_size):
                enc = self._encode(texts[i:i + self.batch_size])
                gen = self.lm.generate(**enc, generation_config=cfg)
                new = gen[:, enc.input_ids.shape[1]:]
                out += [s.strip() for s in self.tok.batch_decode(new.cpu(), skip_special_tokens=True)]
        return out

    def label_ids(self, labels: tuple[str, ...]) -> list[int]:
        """The single token id of each label (as the reply's first token); error if not one."""
        ids = []
        for lab in labels:
            t = self.tok.encode(lab, add_special_tokens=False)
            if len(t) != 1:
                raise ValueError(f"{self.name}: judge label {lab!r} is {len(t)} tokens; the "
                                 f"log-prob judge needs single-token labels")
            ids.append(t[0])
        return ids

    def label_probs(self, conversations: list[list[dict]], labels: tuple[str, ...]) -> torch.Tensor:
        """Softmax over the labels' logits at the reply's first token: [N, len(labels)].
        Requests are batched by length (less padding); rows come back in the given order."""
        ids = self.label_ids(labels)
        texts = [self.prompt(m) for m in conversations]
        lengths = [len(t) for t in self.tok(texts, add_special_tokens=False).input_ids]
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        probs = torch.zeros(len(texts), len(labels))
        with self._eval():
            for i in range(0, len(order), self.batch_size):
                rows = order[i:i + self.batch_size]
                enc = self._encode([texts[r] for r in rows])
                logits = self.lm(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                                 position_ids=position_ids_from_mask(enc.attention_mask),
                                 logits_to_keep=1, use_cache=False).logits[:, -1].float()
                probs[rows] = torch.softmax(logits[:, ids], dim=-1).cpu()
        return probs


__all__ = ["ChatModel", "ChatTemplateError", "chat_prompt", "load_chat"]


def load_chat(path: str, name: str, cfg, lm=None):
    """A ChatModel for ``path`` (the given LM, or loaded; 4-bit when asked and CUDA is there)."""
    from ..models import load_causal_lm, load_tokenizer

    tok = load_tokenizer(path)
    lm = lm if lm is not None else load_causal_lm(path, load_in_4bit=cfg.load_in_4bit)
    return ChatModel(lm, tok, name, cfg.batch_size, cfg.temperature)
