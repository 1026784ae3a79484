"""The ``ensemble`` reward source: every member's standardised score, [M, B].

Loads a folder written by ``riskalign reward --ensemble M`` (``manifest.json`` + ``member-K/``).
Member m's raw score s is standardised as (s - mean_m) / std_m with the mean and std the manifest
recorded on a reference set, so that the variance across members does not depend on each member's
scale. Called as a plain reward source it returns the member mean [B]; ``members`` returns all of
them for the ensemble methods (``rewards.aggregate``).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..files import read_json
from .base import RewardError, join


class EnsembleReward:
    def __init__(self, folder: str | Path, target: str = "full", batch_size: int = 32):
        from ..reward_model.model import load_reward_model

        folder = Path(folder)
        manifest = folder / "manifest.json"
        if not manifest.is_file():
            raise RewardError(f"{folder}: not a reward ensemble (no manifest.json); train one "
                              f"with `riskalign reward`")
        info = read_json(manifest, "ensemble manifest")
        members = info.get("members") or []
        if not isinstance(members, list):
            raise RewardError(f"{manifest}: 'members' must be a list")
        if not members:
            raise RewardError(f"{manifest}: lists no members")
        for m, entry in enumerate(members):
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                raise RewardError(f"{manifest}: member {m} must be an object with a 'path'")
        max_length = info.get("max_length", 256)
        if not isinstance(max_length, int) or max_length < 1:
            raise RewardError(f"{manifest}: 'max_length' must be a positive integer, got "
                              f"{max_length!r}")
        self.max_length = max_length
        self.target, self.batch_size = target, batch_size
        self.models, self.tok = [], None
        self.mean = torch.zeros(len(members))
        self.std = torch.ones(len(members))
        for m, entry in enumerate(members):
            mean, std = entry.get("mean"), entry.get("std")
            if not (isinstance(mean, (int, float)) and isinstance(std, (int, float))
                    and math.isfinite(mean) and math.isfinite(std) and std > 0):
                raise RewardError(f"{manifest}: member {m} has no usable mean/std (got {mean}, "
                                  f"{std}); members cannot be standardised")
            model, tok = load_reward_model(str(folder / entry["path"]))
            if self.tok is None:
                self.tok = tok
            elif tok.get_vocab() != self.tok.get_vocab():
                raise RewardError(f"{manifest}: member {m} uses a different tokenizer from "
                                  f"member 0; ensemble members must share one")
            self.models.append(model.eval())
            self.mean[m], self.std[m] = mean, std

    def __len__(self) -> int:
        return len(self.models)

    @torch.no_grad()
    def members(self, prompts: list[str], completions: list[str]) -> torch.Tensor:
        """Standardised scores [M, B]."""
        from ..reward_model.model import score_texts

        texts = ([join(p, c) for p, c in zip(prompts, completions)] if self.target == "full"
                 else list(completions))
        raw = torch.stack([score_texts(m, self.tok, texts, self.max_length, self.batch_size)
                           for m in self.models])
        return (raw - self.mean[:, None]) / self.std[:, None]

    def __call__(self, prompts: list[str], completions: list[str]) -> torch.Tensor:
        return self.members(prompts, completions).mean(0)


__all__ = ["EnsembleReward"]
