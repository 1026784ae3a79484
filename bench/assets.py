"""Models and prompts the benchmark's runners share, built once into a work folder.

* ``tiny/``: a randomly initialised Llama (4 layers, hidden 128) with the SmolLM2 tokenizer;
* ``reward/``: a randomly initialised Llama sequence classifier (2 layers, hidden 64, one
  logit) with the same tokenizer, the reward both libraries use (TRL feeds it token ids);
* ``ensemble/``: five more such classifiers (seeds 100-104) as a riskalign ensemble folder, each with
  its mean and std on the prompts in ``manifest.json``;
* ``prompts.jsonl``: drug-review openings of exactly 16 tokens whose text re-tokenizes to the
  same ids, so both libraries see identical prompts.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

PROMPT_TOKENS = 16


def _llama_config(tok, hidden: int, layers: int, heads: int):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                       num_hidden_layers=layers, num_attention_heads=heads,
                       num_key_value_heads=heads, max_position_embeddings=256,
                       tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                       eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)


def _save(model, tok, folder: Path) -> None:
    model.save_pretrained(str(folder), safe_serialization=True)
    tok.save_pretrained(str(folder))


def build(work: Path, n_prompts: int = 256) -> dict[str, str]:
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification

    from riskalign.assets import prepare_default_tokenizer
    from riskalign.models import load_tokenizer
    from riskalign.reward_model.model import load_reward_model, score_texts
    from riskalign.tasks import get_spec

    work.mkdir(parents=True, exist_ok=True)
    done = work / "assets.json"
    if done.exists():
        return json.loads(done.read_text())
    tok = load_tokenizer(str(prepare_default_tokenizer()))
    torch.manual_seed(0)
    _save(LlamaForCausalLM(_llama_config(tok, 128, 4, 4)), tok, work / "tiny")
    torch.manual_seed(1)
    rm_cfg = _llama_config(tok, 64, 2, 2)
    rm_cfg.num_labels = 1
    _save(LlamaForSequenceClassification(rm_cfg), tok, work / "reward")

    train, _ = get_spec("drugreview-sentiment").load(None)
    rows = []
    for ex in train:
        ids = tok(ex.text, add_special_tokens=False).input_ids[:PROMPT_TOKENS]
        text = tok.decode(ids)
        if len(ids) == PROMPT_TOKENS and tok(text, add_special_tokens=False).input_ids == ids:
            rows.append({"ids": ids, "text": text})
        if len(rows) == n_prompts:
            break
    (work / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    texts = [r["text"] for r in rows]
    members = []
    for m in range(5):
        torch.manual_seed(100 + m)
        folder = work / "ensemble" / f"member-{m}"
        _save(LlamaForSequenceClassification(rm_cfg), tok, folder)
        model, mtok = load_reward_model(str(folder))
        s = score_texts(model.eval(), mtok, texts, 64, 32)
        members.append({"path": f"member-{m}", "seed": 100 + m, "mean": s.mean().item(),
                        "std": s.std().item()})
    (work / "ensemble" / "manifest.json").write_text(json.dumps(
        {"kind": "riskalign-reward-ensemble", "max_length": 64, "members": members}, indent=2))
    paths = {"tiny": str(work / "tiny"), "reward": str(work / "reward"),
             "ensemble": str(work / "ensemble"), "prompts": str(work / "prompts.jsonl")}
    done.write_text(json.dumps(paths, indent=2))
    return paths
