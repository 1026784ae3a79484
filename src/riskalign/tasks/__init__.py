"""Tasks: prompt datasets with class labels, a default reward and token budgets."""

from __future__ import annotations

import random

from ..config import TaskConfig
from .base import DataError, Example, PromptSet, Task, TaskSpec, build_prompts, clean_text

_REGISTRY: dict[str, TaskSpec] = {}


def register(spec: TaskSpec) -> None:
    _REGISTRY[spec.name] = spec


def task_names() -> list[str]:
    return sorted(_REGISTRY)


def get_spec(name: str) -> TaskSpec:
    if name not in _REGISTRY:
        raise DataError(f"task.name: unknown task '{name}' (known: {', '.join(task_names())})")
    return _REGISTRY[name]


def load_task(cfg: TaskConfig, tokenizer, seed: int = 0) -> Task:
    """Load the task's data and cut prompts with the policy tokenizer."""
    spec = get_spec(cfg.name)
    train_raw, test_raw = spec.load(cfg.data_path)
    prompt_tokens = cfg.prompt_tokens or spec.prompt_tokens
    new_tokens = cfg.new_tokens or spec.new_tokens
    min_new = cfg.min_new_tokens if cfg.min_new_tokens is not None else new_tokens // 2
    if min_new > new_tokens:
        raise DataError(f"task.min_new_tokens must be <= new_tokens ({new_tokens}), got {min_new}")
    context = getattr(tokenizer, "model_max_length", None) or 0
    if 0 < context < 10**9 and prompt_tokens + new_tokens > context:
        raise DataError(f"task.prompt_tokens + task.new_tokens = {prompt_tokens + new_tokens} "
                        f"exceeds the model's context of {context} tokens")
    train = build_prompts(train_raw, tokenizer, prompt_tokens, f"{spec.name} train split")
    test = build_prompts(test_raw, tokenizer, prompt_tokens, f"{spec.name} test split")
    validation = None
    if cfg.validation:
        if cfg.validation >= len(train):
            raise DataError(f"task.validation ({cfg.validation}) must be smaller than the "
                            f"{len(train)} training prompts")
        held = set(_limit_indices(len(train), cfg.validation, VALIDATION_SEED))
        validation = train.subset(sorted(held))
        train = train.subset(i for i in range(len(train)) if i not in held)
    train = train if cfg.max_train is None else train.subset(
        _limit_indices(len(train), cfg.max_train, seed))
    test = test if cfg.max_eval is None else test.subset(
        _limit_indices(len(test), cfg.max_eval, seed + 1))
    return Task(spec, train, test, prompt_tokens, new_tokens, min_new, validation)


# the validation split is the same whatever the run's seed
VALIDATION_SEED = 20_241_201


def _limit_indices(n: int, k: int, seed: int) -> list[int]:
    """A seeded subset of k of range(n), in order (all of it when k >= n)."""
    return list(range(n)) if k >= n else sorted(random.Random(seed).sample(range(n), k))


from . import drugreview, imdb, jigsaw, rtp  # noqa: E402

register(drugreview.SPEC)
register(imdb.SPEC)
register(jigsaw.SPEC)
register(rtp.SPEC)

__all__ = ["DataError", "Example", "PromptSet", "Task", "TaskSpec", "build_prompts", "clean_text",
           "get_spec", "load_task", "register", "task_names"]
