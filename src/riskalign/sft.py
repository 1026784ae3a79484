"""``riskalign sft``: next-token fine-tuning on a task's positive / non-toxic texts, a text file,
or (prompt, response) pairs rendered with the model's chat template.

A small loop (causal LM loss on right-padded batches, AdamW, optional LoRA) so that it shares the
model loading, seeding and safetensors saving of the PPO path. Under ``accelerate launch`` each
process takes every world-th text of a batch and the loss is rescaled to the batch's token mean. For pairs the loss covers the
response tokens only (the chat prompt is masked out).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .progress import track
from . import precision
from .atomic import write_dir
from .config import ModelConfig, TaskConfig, _check, check_precision, opt, precision_opt
from .files import read_text
from .models import check_context, load_tokenizer, load_trainable_lm
from .ppo.distributed import Dist
from .tasks import DataError, get_spec
from .runtime import adamw, configure


@dataclass
class SFTConfig:
    seed: int = opt(0, "Seed for data order and initialisation.")
    output_dir: str = opt("runs/sft", "Where the fine-tuned model is saved.")
    text_file: str | None = opt(None, "Plain-text file, one training text per line (instead of "
                                      "the task's positive texts).")
    pairs_file: str | None = opt(None, "jsonl with 'prompt' and 'response' per line: chat SFT on "
                                       "the responses (needs a tokenizer with a chat template).")
    label: int = opt(1, "Task texts with this label are used (1 = positive / non-toxic).")
    max_texts: int | None = opt(None, "Use at most this many texts.")
    max_tokens: int = opt(128, "Texts are truncated to this many tokens.")
    epochs: int = opt(1, "Passes over the texts.")
    batch_size: int = opt(8, "Texts per step.")
    learning_rate: float = opt(1e-4, "AdamW learning rate.")
    precision: str = precision_opt()
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "Model to tune."})
    task: TaskConfig = field(default_factory=TaskConfig, metadata={"help": "Source of texts."})

    def validate(self) -> "SFTConfig":
        for k in ("max_tokens", "epochs", "batch_size"):
            _check(getattr(self, k) >= 1, k, ">= 1", getattr(self, k))
        _check(self.learning_rate > 0, "learning_rate", "> 0", self.learning_rate)
        check_precision(self.precision)
        self.model.validate("model")
        self.task.validate("task")
        return self


def training_texts(cfg: SFTConfig) -> list[str]:
    if cfg.text_file:
        p = Path(cfg.text_file)
        if not p.is_file():
            raise DataError(f"text_file not found: {p}")
        texts = [ln.strip() for ln in read_text(p, "text_file").splitlines() if ln.strip()]
        if not texts:
            raise DataError(f"{p}: no non-empty lines")
    else:
        train, _ = get_spec(cfg.task.name).load(cfg.task.data_path)
        texts = [e.text for e in train if e.label == cfg.label]
        if not texts:
            raise DataError(f"task {cfg.task.name}: no training texts with label {cfg.label}")
    if cfg.max_texts:
        texts = texts[:cfg.max_texts]
    return texts


def training_pairs(cfg: SFTConfig, tok) -> list[tuple[str, str]]:
    """(prefix, target) examples; the loss covers the target. Plain texts have no prefix."""
    if not cfg.pairs_file:
        return [("", t) for t in training_texts(cfg)]
    from .rlaif.chat import chat_prompt
    from .tasks.files import read_records

    p = Path(cfg.pairs_file)
    if not p.is_file():
        raise DataError(f"pairs_file not found: {p}")
    pairs = []
    for n, row in enumerate(read_records(p), start=1):
        prompt, response = row.get("prompt"), row.get("response")
        if not (isinstance(prompt, str) and prompt.strip() and isinstance(response, str)
                and response.strip()):
            raise DataError(f"{p} row {n}: needs non-empty 'prompt' and 'response' text")
        pairs.append((chat_prompt(tok, [{"role": "user", "content": prompt}], str(p)),
                      response))
    if not pairs:
        raise DataError(f"{p}: no rows")
    return pairs[:cfg.max_texts] if cfg.max_texts else pairs


def encode_pairs(tok, pairs: list[tuple[str, str]], max_tokens: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids, attention mask and labels [B, L]; labels are -100 on prefix and pad.

    Too long a pair keeps the end of its prefix (at most what the target leaves, and never more
    than half the budget when the target needs it) and the start of its target, so every row
    trains on at least ceil(max_tokens / 2) target tokens or all of them."""
    rows = []
    for prefix, target in pairs:
        pre = tok(prefix, add_special_tokens=False).input_ids if prefix else []
        tgt = tok(target + tok.eos_token, add_special_tokens=False).input_ids
        room = max(max_tokens - len(tgt), max_tokens // 2)
        pre = pre[len(pre) - room:] if len(pre) > room else pre
        ids = (pre + tgt)[:max_tokens]
        rows.append((ids, [-100] * len(pre) + tgt))
    L = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), L), tok.pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), L), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), L), dtype=torch.long)
    for i, (r, lab) in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        labels[i, :len(r)] = torch.tensor(lab[:len(r)])
        mask[i, :len(r)] = 1
    return ids, mask, labels


def run_sft(cfg: SFTConfig, threads: int | None = None) -> Path:
    """Fine-tune and save the model (merged when LoRA is used) to ``cfg.output_dir``; the folder
    appears only once it is complete."""
    out = Path(cfg.output_dir)
    if out.is_dir() and any(out.iterdir()) and not (out / "config.json").is_file():
        raise DataError(f"output_dir {out} holds files but no model; SFT replaces the whole "
                        f"folder with the model, so give an empty or new folder")
    configure(threads, cfg.precision)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    tok = load_tokenizer(cfg.model.policy, cfg.model.trust_remote_code)
    check_context(tok, cfg.max_tokens, "max_tokens")
    texts = training_pairs(cfg, tok)
    lm = load_trainable_lm(cfg.model)
    dist = Dist()  # several processes under `accelerate launch`: each takes a share of a batch
    dist.place(lm)
    params = [p for p in lm.parameters() if p.requires_grad]
    opt_ = adamw(params, cfg.learning_rate)
    model, opt_ = dist.prepare(lm, opt_)
    lm.train()
    steps = [(e, i) for e in range(cfg.epochs) for i in range(0, len(texts), cfg.batch_size)]
    order = list(range(len(texts)))
    losses = []
    for epoch, start in track(steps, description="sft"):
        if start == 0:
            random.Random(cfg.seed + epoch).shuffle(order)
        batch = order[start:start + cfg.batch_size]
        mine, n_mine = dist.part(batch)
        ids, mask, labels = (t.to(dist.device) for t in
                             encode_pairs(tok, [texts[j] for j in mine], cfg.max_tokens))
        with precision.autocast(dist.device):  # the loss itself is float32
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        scale = dist.share((labels[:, 1:] != -100).sum() * (n_mine > 0))  # token-mean share
        opt_.zero_grad(set_to_none=True)
        dist.backward(loss if scale == 1.0 else loss * scale)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt_.step()
        losses.append(loss.item())
    if not dist.is_main:
        return out
    if cfg.model.lora.enabled:
        lm = lm.merge_and_unload()

    def write(tmp: Path) -> None:
        lm.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))

    write_dir(out, write)
    print(f"sft: {len(texts)} texts, {len(steps)} steps, loss {losses[0]:.3f} -> "
          f"{sum(losses[-5:]) / len(losses[-5:]):.3f}; saved to {out}")
    return out


__all__ = ["SFTConfig", "encode_pairs", "run_sft", "training_pairs", "training_texts"]
