"""``riskalign reward``: train one reward model or an ensemble of M that differ only in seed.

Each member m uses seed ``seed + m`` for its head initialisation and its data order; everything
else is shared. The output folder holds ``member-K/`` (safetensors + tokenizer + member.json) and,
once every member is done, ``manifest.json`` with each member's held-out pairwise accuracy and its
mean and standard deviation on a reference set, so the ensemble reward can standardise members
before combining them. A finished member is not retrained when the command is rerun.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..progress import track
from ..atomic import write_dir, write_text
from ..config import _check, check_precision, opt, precision_opt
from ..files import read_json
from ..ppo.distributed import Dist
from ..tasks import DataError
from .data import Preference, load_preferences, split_preferences
from .loss import bradley_terry_loss, pairwise_accuracy
from .model import load_reward_model, reward_forward, score_texts
from ..runtime import adamw, configure

MANIFEST = "manifest.json"


@dataclass
class RewardTrainConfig:
    data: str | None = opt(None, "Preference pairs: a jsonl/csv/parquet file with prompt, chosen, "
                                 "rejected, or a cached Hugging Face dataset name.")
    eval_data: str | None = opt(None, "Held-out pairs (default: eval_fraction of data).")
    eval_fraction: float = opt(0.1, "Share of data held out when eval_data is not given.")
    backbone: str = opt("minilm", "Backbone: 'minilm' (offline all-MiniLM-L6-v2), the policy "
                                  "'smollm2-135m', a local folder or a hub id.")
    output_dir: str = opt("runs/reward", "Folder for the members and manifest.json.")
    ensemble: int = opt(1, "Number of members M (same data, seeds seed .. seed+M-1).")
    seed: int = opt(0, "Seed of member 0 (head initialisation and data order).")
    epochs: int = opt(1, "Passes over the training pairs.")
    batch_size: int = opt(16, "Pairs per optimiser step.")
    learning_rate: float = opt(3e-5, "AdamW learning rate.")
    center_coef: float = opt(0.0, "Reward centering eta in -log sigmoid(r+ - r-) + "
                                  "eta (r+ + r-)^2 (the uncertainty-aware paper uses it).")
    max_length: int = opt(256, "Texts are truncated to this many tokens.")
    reference_size: int = opt(256, "Texts (held-out chosen and rejected answers) on which each "
                                   "member's mean and std are recorded.")
    threads: int | None = opt(None, "torch CPU threads (default: torch's choice).")
    precision: str = precision_opt()
    trust_remote_code: bool = opt(False, "Allow model code from the hub (off unless you ask).")

    def validate(self) -> "RewardTrainConfig":
        for k in ("ensemble", "epochs", "batch_size", "max_length", "reference_size"):
            _check(getattr(self, k) >= 1, k, ">= 1", getattr(self, k))
        _check(self.learning_rate > 0, "learning_rate", "> 0", self.learning_rate)
        _check(0 <= self.eval_fraction < 1, "eval_fraction", "in [0, 1)", self.eval_fraction)
        _check(self.center_coef >= 0, "center_coef", ">= 0", self.center_coef)
        check_precision(self.precision)
        return self


def _texts(rows: list[Preference], which: str) -> list[str]:
    return [r.prompt + getattr(r, which) for r in rows]


def evaluate_pairs(model, tok, rows: list[Preference], max_length: int) -> float:
    """Held-out pairwise accuracy."""
    chosen = score_texts(model, tok, _texts(rows, "chosen"), max_length)
    rejected = score_texts(model, tok, _texts(rows, "rejected"), max_length)
    return pairwise_accuracy(chosen, rejected)


def _member_settings(cfg: RewardTrainConfig) -> dict:
    """What a trained member depends on besides its seed; a rerun with other values retrains."""
    keep = ("data", "eval_data", "eval_fraction", "backbone", "epochs", "batch_size",
            "learning_rate", "center_coef", "max_length", "reference_size")
    return {k: getattr(cfg, k) for k in keep}


def train_member(cfg: RewardTrainConfig, train: list[Preference], held: list[Preference],
                 reference: list[str], member: int, dist: Dist | None = None) -> dict:
    """Train member ``member``. With several processes (``dist``) each takes every world-th pair
    of a batch and the loss is rescaled to the batch mean; only the main process writes."""
    dist = dist or Dist()
    seed = cfg.seed + member
    torch.manual_seed(seed)
    model, tok = load_reward_model(cfg.backbone, seed, cfg.trust_remote_code)
    dist.place(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optim = adamw(params, cfg.learning_rate)
    wrapped, optim = dist.prepare(model, optim)
    order = list(range(len(train)))
    steps = [(e, s) for e in range(cfg.epochs) for s in range(0, len(train), cfg.batch_size)]
    losses = []
    model.train()
    for epoch, start in track(steps, description=f"reward member {member}"):
        if start == 0:
            random.Random(seed * 1000 + epoch).shuffle(order)
        full = [train[i] for i in order[start:start + cfg.batch_size]]
        batch, n_mine = dist.part(full)
        r = reward_forward(wrapped, tok, _texts(batch, "chosen") + _texts(batch, "rejected"),
                           cfg.max_length)
        loss = bradley_terry_loss(r[:len(batch)], r[len(batch):], cfg.center_coef)
        scale = dist.share(torch.tensor(n_mine, device=dist.device))  # pair-mean share
        optim.zero_grad(set_to_none=True)
        dist.backward(loss if scale == 1.0 else loss * scale)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        losses.append(loss.item())
    if not dist.is_main:  # only the main process scores and writes the member
        return {"path": f"member-{member}", "seed": seed}
    ref_scores = score_texts(model, tok, reference, cfg.max_length)
    info = {"path": f"member-{member}", "seed": seed, "settings": _member_settings(cfg),
            "train_pairs": len(train), "eval_pairs": len(held),
            "final_loss": sum(losses[-5:]) / len(losses[-5:]),
            "eval_accuracy": evaluate_pairs(model, tok, held, cfg.max_length) if held else None,
            "mean": ref_scores.mean().item(),
            "std": ref_scores.std(unbiased=False).item()}

    def write(tmp: Path) -> None:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        (tmp / "member.json").write_text(json.dumps(info, indent=2))

    write_dir(Path(cfg.output_dir) / info["path"], write)
    return info


def train_reward_models(cfg: RewardTrainConfig) -> dict:
    """Train (or finish training) every member; return and write the manifest."""
    if not cfg.data:
        raise DataError("data: give a preference file or dataset (data=pairs.jsonl)")
    configure(cfg.threads, cfg.precision)
    rows = load_preferences(cfg.data)
    if cfg.eval_data:
        train, held = rows, load_preferences(cfg.eval_data)
    else:
        train, held = split_preferences(rows, cfg.eval_fraction, cfg.seed)
    ref_rows = held or train
    reference = [t for pair in zip(_texts(ref_rows, "chosen"), _texts(ref_rows, "rejected"))
                 for t in pair][:cfg.reference_size]  # chosen and rejected alternate
    out = Path(cfg.output_dir)
    dist = Dist()
    members = []
    for m in range(cfg.ensemble):
        done = out / f"member-{m}" / "member.json"
        info = read_json(done, "member record") if done.exists() else None
        if (info is None or info.get("seed") != cfg.seed + m
                or info.get("settings") != _member_settings(cfg)):
            info = train_member(cfg, train, held, reference, m, dist)
        members.append(info)
        if not dist.is_main:
            continue
        acc = info["eval_accuracy"]
        print(f"member {m} (seed {info['seed']}): held-out pairwise accuracy "
              f"{'n/a' if acc is None else f'{acc:.3f}'} on {len(held)} pairs; reference mean "
              f"{info['mean']:+.3f}, std {info['std']:.3f}")
    if not dist.is_main:
        return {}
    manifest = {"kind": "riskalign-reward-ensemble", "backbone": cfg.backbone,
                "max_length": cfg.max_length, "members": members, "config": asdict(cfg)}
    write_text(out / MANIFEST, json.dumps(manifest, indent=2))
    accs = [m["eval_accuracy"] for m in members if m["eval_accuracy"] is not None]
    if accs:
        print(f"ensemble of {len(members)}: mean held-out accuracy "
              f"{sum(accs) / len(accs):.3f}; manifest {out / MANIFEST}")
    if any(not math.isfinite(m["std"]) or m["std"] <= 0 for m in members):
        print("warning: a member gives the same score to every reference text (std 0); it "
              "cannot be standardised")
    return manifest


__all__ = ["MANIFEST", "RewardTrainConfig", "evaluate_pairs", "train_member",
           "train_reward_models"]
