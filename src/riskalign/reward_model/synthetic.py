"""Semi-synthetic preferences (Gao et al.): a policy answers each prompt twice, a gold reward
source picks the better answer, optionally with label noise.

Output: ``train.jsonl`` (from the task's training prompts) and ``test.jsonl`` (held-out prompts),
one row per prompt with ``prompt``, ``chosen`` and ``rejected``. Pairs whose two answers tie
under the gold reward, or are identical, are dropped and counted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path


from ..config import (RewardConfig, TaskConfig, _check, check_precision, opt,
                      precision_opt)
from ..eval.sampling import sample_and_score
from ..models import ActorCritic, load_causal_lm, load_tokenizer
from ..ppo.rollout import GenerationSettings
from ..rewards import build_reward
from ..tasks import DataError, get_spec, load_task
from .data import Preference, write_preferences
from ..runtime import configure


@dataclass
class SyntheticPrefsConfig:
    output_dir: str = opt("runs/prefs", "Folder for train.jsonl and test.jsonl.")
    policy: str = opt("smollm2-135m", "Model that writes both answers.")
    train_pairs: int = opt(512, "Training prompts to label (at most the task's).")
    test_pairs: int = opt(128, "Held-out prompts to label (at most the task's).")
    label_noise: float = opt(0.0, "Probability of swapping chosen and rejected.")
    seed: int = opt(0, "Seed for prompt choice, sampling and noise.")
    batch_size: int = opt(32, "Prompts per generation batch.")
    temperature: float = opt(1.0, "Sampling temperature.")
    threads: int | None = opt(None, "torch CPU threads (default: torch's choice).")
    precision: str = precision_opt()
    task: TaskConfig = field(default_factory=TaskConfig, metadata={"help": "Prompt task."})
    reward: RewardConfig = field(default_factory=RewardConfig,
                                 metadata={"help": "Gold reward (default: the task's)."})

    def validate(self) -> "SyntheticPrefsConfig":
        for k in ("train_pairs", "test_pairs", "batch_size"):
            _check(getattr(self, k) >= 1, k, ">= 1", getattr(self, k))
        _check(0 <= self.label_noise <= 0.5, "label_noise", "in [0, 0.5]", self.label_noise)
        _check(self.temperature > 0, "temperature", "> 0", self.temperature)
        check_precision(self.precision)
        self.task.validate("task")
        self.reward.validate("reward")
        return self


def label_pairs(prompts: list[str], first: list[str], second: list[str], gold_first: list[float],
                gold_second: list[float], noise: float, rng: random.Random
                ) -> tuple[list[Preference], int]:
    """Gold picks the higher-scoring answer; ``noise`` swaps a pair with that probability.
    Returns the pairs and how many were dropped as ties."""
    rows, ties = [], 0
    for p, a, b, ga, gb in zip(prompts, first, second, gold_first, gold_second):
        if ga == gb or a == b:
            ties += 1
            continue
        chosen, rejected = (a, b) if ga > gb else (b, a)
        if rng.random() < noise:
            chosen, rejected = rejected, chosen
        rows.append(Preference(p, chosen, rejected))
    return rows, ties


def make_synthetic_preferences(cfg: SyntheticPrefsConfig) -> dict:
    configure(cfg.threads, cfg.precision)
    tok = load_tokenizer(cfg.policy)
    policy = ActorCritic(load_causal_lm(cfg.policy))
    task = load_task(cfg.task, tok, cfg.seed)
    gold = build_reward(cfg.reward, get_spec(cfg.task.name).reward)
    gen = GenerationSettings(task.new_tokens, task.min_new_tokens, cfg.temperature)
    rng = random.Random(cfg.seed)
    out = Path(cfg.output_dir)
    report = {}
    for split, prompts, n in (("train", task.train.texts, cfg.train_pairs),
                              ("test", task.test.texts, cfg.test_pairs)):
        prompts = prompts if n >= len(prompts) else rng.sample(prompts, n)
        a, ga = sample_and_score(policy, tok, gold, prompts, gen, cfg.batch_size, cfg.seed)
        b, gb = sample_and_score(policy, tok, gold, prompts, gen, cfg.batch_size, cfg.seed + 1)
        rows, ties = label_pairs(prompts, a, b, ga.tolist(), gb.tolist(), cfg.label_noise, rng)
        if not rows:
            raise DataError(f"{split}: every one of the {ties} pairs tied under the gold reward; "
                            f"no preferences to write")
        write_preferences(out / f"{split}.jsonl", rows)
        report[split] = {"pairs": len(rows), "ties_dropped": ties}
        print(f"{split}: {len(rows)} pairs written to {out / f'{split}.jsonl'} "
              f"({ties} ties dropped, label noise {cfg.label_noise:g})")
    return report


__all__ = ["SyntheticPrefsConfig", "label_pairs", "make_synthetic_preferences"]
