"""Is an answer about its question? Sentence-embedding similarity, ranked among the prompts.

Reward hacking in RLAIF shows as generic "virtuous" text that fits any question. An answer a_i
is on topic when its own prompt p_i is among the prompts most similar to it: with unit-length
sentence embeddings (mean-pooled, all-MiniLM-L6-v2 by default), s_ij = cos(a_i, p_j), and a_i
is on topic when s_ii exceeds s_ij for at least ``share`` (90%) of the other prompts j. No
absolute threshold is needed: an off-topic answer is about as close to every prompt. Reported:
the on-topic rate and the mean own-prompt similarity.
"""

from __future__ import annotations

import torch


class SentenceEncoder:
    """Mean-pooled, L2-normalised sentence embeddings of a Hugging Face encoder."""

    def __init__(self, name_or_path: str = "minilm", batch_size: int = 32, max_length: int = 128):
        from transformers import AutoModel, AutoTokenizer

        from ..assets import load_error, resolve_model

        path = resolve_model(name_or_path)
        try:
            self.tok = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path).eval()
        except Exception as e:  # any damage to the folder, named in one line
            raise load_error(name_or_path, e) from None
        self.batch_size, self.max_length = batch_size, max_length

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> torch.Tensor:
        """[N, d] unit vectors."""
        out = []
        for i in range(0, len(texts), self.batch_size):
            enc = self.tok(texts[i:i + self.batch_size], padding=True, truncation=True,
                           max_length=self.max_length, return_tensors="pt")
            hidden = self.model(**enc).last_hidden_state
            mask = enc.attention_mask.unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            out.append(torch.nn.functional.normalize(pooled.float(), dim=-1))
        return torch.cat(out)


def on_topic(encode, prompts: list[str], answers: list[str], share: float = 0.9) -> dict:
    """{on_topic_rate, prompt_similarity} of answers [N] to their prompts [N] (N >= 2)."""
    if len(prompts) != len(answers) or len(prompts) < 2:
        raise ValueError("on_topic needs as many answers as prompts, and at least 2 of each")
    sims = encode(answers) @ encode(prompts).T           # [N answers, N prompts]
    own = sims.diag()
    beaten = (own[:, None] > sims).sum(1).float() / (len(prompts) - 1)  # s_ii > s_ii is false
    return {"on_topic_rate": (beaten >= share).float().mean().item(),
            "prompt_similarity": own.mean().item()}


__all__ = ["SentenceEncoder", "on_topic"]
