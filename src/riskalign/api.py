"""The Python API: a PPO trainer built from your own objects.

    from riskalign import presets, train

    def brevity(prompts, completions):           # any (prompts, completions) -> numbers
        return [-len(c) / 50 for c in completions]

    cfg = presets.cpu_run()                      # a typed RunConfig; change what you like
    cfg.output_dir, cfg.ppo.total_iterations = "runs/brevity", 20
    result = train("smollm2-135m", reward=brevity, prompts=["The film was", ...], config=cfg)

RA-RLHF, ensembles and your own plug-ins come through the same two plug points as on the
command line: the reward (a callable, a list of callables with weights, a riskalign reward
source, an ``Ensemble`` combined by ``ensemble_method``, or a ``RewardShaper``) and the
``selector`` (``config.risk`` builds RA-RLHF's; pass any ``Selector`` to replace it).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Sequence

from .config import ConfigError, RunConfig
from .models import ActorCritic, apply_lora, check_context, load_policy, load_tokenizer
from .ppo.rollout import GenerationSettings
from .ppo.trainer import PPOTrainer, seed_everything
from .rewards import EnsembleShaper, RewardShaper, WeightedSum
from .risk import build_selector
from .runtime import configure
from .tasks import get_spec
from .tasks.base import PromptSet


@dataclass
class TrainResult:
    """What ``train`` returns: the trainer (with the trained policy), the run's summary and
    its output folder."""

    trainer: PPOTrainer   # the trained policy is trainer.policy; its tokenizer trainer.tokenizer
    summary: dict         # what summary.json holds: iterations, scores before/after, timings
    output_dir: str       # logs, checkpoints and the final model (final/)


def as_prompts(prompts: Any, field: str = "prompts") -> list[str]:
    """A list of prompt strings from a list, or from a ``datasets.Dataset`` (its 'prompt'
    column)."""
    if isinstance(prompts, str):
        raise ValueError(f"{field}: give a list of prompts, not one string")
    if isinstance(getattr(prompts, "column_names", None), dict):  # a DatasetDict
        raise ValueError(f"{field}: a DatasetDict holds several splits; pass one, e.g. "
                         f"dataset['train']")
    if hasattr(prompts, "column_names"):  # a datasets.Dataset
        if "prompt" not in prompts.column_names:
            raise ValueError(f"{field}: the dataset has no 'prompt' column (columns: "
                             f"{', '.join(prompts.column_names)})")
        prompts = prompts["prompt"]
    prompts = list(prompts)
    if not prompts:
        raise ValueError(f"{field}: no prompts")
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise ValueError(f"{field}: prompt {i} must be non-empty text, got {p!r}")
    return prompts


def as_reward(reward: Any, weights: Sequence[float] | None, config: RunConfig,
              ensemble_method: str) -> Any:
    """The trainer's reward: a ``RewardShaper`` as is; an ensemble (``members()`` and ``len``)
    combined by ``ensemble_method``; a list of callables summed with ``weights``; any other
    callable as it is."""
    if isinstance(reward, RewardShaper):
        return reward
    if hasattr(reward, "members") and hasattr(reward, "__len__"):
        return EnsembleShaper(reward, ensemble_method, config.reward.lam, config.reward.member,
                              config.ppo.init_kl_coef)
    if isinstance(reward, (list, tuple)):
        return WeightedSum(reward, weights)
    if not callable(reward):
        raise ValueError(f"reward must be a callable (prompts, completions) -> numbers, a list "
                         f"of them, an ensemble or a RewardShaper; got {type(reward).__name__}")
    return reward


def _policy(model: Any, config: RunConfig, ref_model=None):
    """(ActorCritic, reference LM or None) from a name, a folder or a transformers model."""
    if isinstance(model, str):
        config.model.policy = model
        policy, ref = load_policy(config.model)
        if ref_model is not None:
            ref = ref_model.requires_grad_(False).eval()
        return policy, ref
    lm = model.lm if isinstance(model, ActorCritic) else model
    if not hasattr(lm, "config") or not hasattr(lm.config, "hidden_size"):
        raise ValueError(f"model must be a name, a folder or a transformers causal LM; got "
                         f"{type(model).__name__}")
    ref = ref_model
    if config.model.lora.enabled:
        if hasattr(lm, "peft_config"):
            raise ValueError("model: it already has peft adapters; pass the base model, or set "
                             "config.model.lora.enabled = False to train the adapters it has")
        lm = apply_lora(lm, config.model.lora)
    elif ref is None:
        ref = copy.deepcopy(lm)  # the weights as given are the KL reference
    if ref is not None:
        ref.requires_grad_(False).eval()
    if isinstance(model, ActorCritic):
        model.lm = lm
        return model, ref
    return ActorCritic(lm), ref


def make_trainer(model: Any, reward: Any, prompts: Any, config: RunConfig | None = None, *,
                 tokenizer=None, ref_model=None, reward_weights: Sequence[float] | None = None,
                 ensemble_method: str | None = None, selector: Callable | None = None
                 ) -> PPOTrainer:
    """A ready ``PPOTrainer`` (call ``.train()``); ``train`` below also logs, checkpoints and
    saves.

    model: a model name ('smollm2-135m'), a folder, a hub id, or a transformers causal LM
    (then ``tokenizer`` is needed); with ``config.model.lora.enabled`` it gets LoRA adapters
    and the reference is the model with them switched off, else a frozen copy (or
    ``ref_model``). reward: see ``as_reward``. prompts: a list of strings or a
    ``datasets.Dataset`` with a 'prompt' column. config: a ``RunConfig`` (default: the
    paper's settings); its task section sets new_tokens and min_new_tokens. ensemble_method:
    how an ensemble's members combine (default ``config.reward.ensemble_method``). A model
    object is trained in place, and without LoRA a copy of it as given is the KL reference:
    to resume with one, pass the original weights as ``ref_model``. selector:
    ``(iteration, rollout, rewards, dist) -> (keep, stats)``; default: what ``config.risk``
    asks for (RA-RLHF's soft-risk tail when risk.alpha < 1).
    """
    config = copy.deepcopy(config) if config is not None else RunConfig()
    config.validate()
    configure(config.threads, config.precision)
    seed_everything(config.seed)
    prompts = as_prompts(prompts)
    if tokenizer is None:
        if not isinstance(model, str):
            raise ValueError("tokenizer: give the tokenizer of a model passed as an object")
        tokenizer = load_tokenizer(model, config.model.trust_remote_code)
    elif tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    spec = get_spec(config.task.name)
    new = config.task.new_tokens or spec.new_tokens
    min_new = config.task.min_new_tokens if config.task.min_new_tokens is not None else new // 2
    if min_new > new:
        raise ConfigError(f"task.min_new_tokens must be <= new_tokens ({new}), got {min_new}")
    longest = max(len(tokenizer(p, add_special_tokens=False).input_ids) for p in prompts)
    check_context(tokenizer, longest + new, "the longest prompt + task.new_tokens")
    shaped = as_reward(reward, reward_weights, config,
                       ensemble_method or config.reward.ensemble_method)
    policy, ref = _policy(model, config, ref_model)
    gen = GenerationSettings(new, min_new, config.ppo.temperature, config.ppo.top_k,
                             config.ppo.top_p)
    if selector is None:
        selector = build_selector(config, len(prompts), shaped)
    return PPOTrainer(config, policy, ref, tokenizer, shaped, prompts, gen, selector)


def task_prompts(task: str = "drugreview-sentiment", split: str = "train",
                 model: str = "smollm2-135m", n: int | None = None,
                 prompt_tokens: int | None = None) -> list[str]:
    """Prompts of a built-in task (``riskalign.tasks``), cut to ``prompt_tokens`` tokens of
    ``model``'s tokenizer (default: the task's), the first ``n`` of the split (all of them
    when ``n`` is None)."""
    from .config import TaskConfig
    from .tasks import load_task

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if n is not None and n < 1:
        raise ValueError(f"n must be >= 1 or None, got {n}")
    cfg = TaskConfig(name=task, prompt_tokens=prompt_tokens)
    cfg.validate("task")
    loaded = load_task(cfg, load_tokenizer(model))
    texts = (loaded.train if split == "train" else loaded.test).texts
    return texts[:n] if n is not None else texts


def train(model: Any, reward: Any, prompts: Any, config: RunConfig | None = None, *,
          eval_prompts: Any = None, resume: bool = False, overwrite: bool = False,
          on_step: Callable | None = None, **kwargs) -> TrainResult:
    """Train with PPO as ``riskalign ppo`` does: metrics.jsonl, TensorBoard, checkpoints,
    final/ and summary.json under ``config.output_dir``, the mean reward on ``eval_prompts``
    before and after (up to ``config.log.eval_prompts`` of them), resumable with ``resume``.
    Arguments as for ``make_trainer`` (``kwargs``); ``on_step(trainer, stats)`` runs after
    every iteration."""
    from .ppo.run import run_ppo

    config = copy.deepcopy(config) if config is not None else RunConfig()
    held_out = as_prompts(eval_prompts, "eval_prompts") if eval_prompts is not None else []
    if held_out and config.log.eval_prompts == 0:  # asked for: scored, whatever the preset says
        config.log.eval_prompts = len(held_out)
    built = {}

    def build(cfg, select):
        trainer = make_trainer(model, reward, prompts, cfg,
                               selector=select or kwargs.pop("selector", None), **kwargs)
        built["trainer"] = trainer
        return trainer, SimpleNamespace(test=PromptSet(held_out, [None] * len(held_out)))

    summary = run_ppo(config, resume=resume, overwrite=overwrite, on_step=on_step, build=build)
    return TrainResult(built["trainer"], summary, config.output_dir)


__all__ = ["TrainResult", "as_prompts", "as_reward", "make_trainer", "task_prompts", "train"]
