"""Typed run configuration: dataclasses, YAML files and ``key.sub=value`` overrides.

Every field carries its help text in ``metadata["help"]``; ``describe()`` prints them all, so the
command line (``riskalign ppo --help-config``) and the docs share one source. Defaults follow the
papers (Ziegler et al. / TRL's PPO settings used by RA-RLHF): lr 1.41e-5, batch 128, 4 PPO
epochs, adaptive KL with target 6, initial beta 0.2 and horizon 10000. CPU presets live in
``configs/``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .files import read_text
from .registry import ENSEMBLE_METHODS, REWARD_KINDS, SELECTORS, is_custom


class ConfigError(ValueError):
    """A configuration value, key or file is invalid. The message names the field."""


def opt(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field with help text (lists/dicts get a factory)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


def _check(cond: bool, name: str, rule: str, value: Any) -> None:
    if not cond:
        raise ConfigError(f"{name} must be {rule}, got {value!r}")


PRECISIONS = ("auto", "fp32", "bf16")


def precision_opt(default: str = "auto") -> Any:
    """The ``precision`` field every command has (see ``riskalign.precision``)."""
    return opt(default, "auto, fp32 or bf16. bf16 is mixed precision: matrix multiplies in "
                        "bfloat16, weights, optimizer state, log-probs, values and losses in "
                        "float32. auto = bf16 where the hardware computes it natively (CPU "
                        "avx512_bf16/amx_bf16, CUDA bf16 support), else fp32.")


def check_precision(value: str, name: str = "precision") -> None:
    _check(value in PRECISIONS, name, "one of auto, fp32, bf16", value)


@dataclass
class LoraConfig:
    enabled: bool = opt(False, "Train LoRA adapters instead of the full policy; the reference "
                               "policy is then the same model with the adapter switched off.")
    r: int = opt(16, "LoRA rank.")
    alpha: int = opt(32, "LoRA scaling numerator (effective scale alpha / r).")
    dropout: float = opt(0.0, "Dropout on the LoRA input (0 keeps PPO ratios exact).")
    target_modules: list[str] = opt(["q_proj", "k_proj", "v_proj", "o_proj", "up_proj",
                                     "down_proj", "gate_proj"],
                                    "Module names that receive adapters.")

    def validate(self, p: str) -> None:
        _check(self.r >= 1, f"{p}.r", ">= 1", self.r)
        _check(self.alpha > 0, f"{p}.alpha", "> 0", self.alpha)
        _check(0 <= self.dropout < 1, f"{p}.dropout", "in [0, 1)", self.dropout)
        _check(len(self.target_modules) > 0, f"{p}.target_modules", "non-empty", self.target_modules)


@dataclass
class ModelConfig:
    policy: str = opt("smollm2-135m", "Policy model: 'smollm2-135m' (offline default, prepared by "
                                      "`riskalign assets`), a local folder or a hub id.")
    reference: str | None = opt(None, "Reference policy for the KL penalty (default: the starting "
                                      "policy; ignored with LoRA, where the adapter is switched off).")
    dtype: str = opt("float32", "Weights dtype: float32, bfloat16 or float16.")
    trust_remote_code: bool = opt(False, "Allow model code from the hub (off unless you ask).")
    load_in_4bit: bool = opt(False, "Load the policy's frozen weights in 4 bits (NF4, "
                                    "bitsandbytes) for LoRA training on a CUDA GPU; ignored with "
                                    "a warning on CPU.")
    lora: LoraConfig = field(default_factory=LoraConfig, metadata={"help": "LoRA adapters."})

    def validate(self, p: str) -> None:
        _check(bool(self.policy), f"{p}.policy", "a model name or path", self.policy)
        _check(self.dtype in ("float32", "bfloat16", "float16"), f"{p}.dtype",
               "one of float32, bfloat16, float16", self.dtype)
        self.lora.validate(f"{p}.lora")


@dataclass
class TaskConfig:
    name: str = opt("drugreview-sentiment", "Built-in task: drugreview-sentiment, imdb-gen, "
                                            "jigsaw-gen or rtp-gen.")
    data_path: str | None = opt(None, "Local file or folder with the task's data (csv, jsonl or "
                                      "parquet); default: the task's built-in or cached source.")
    prompt_tokens: int | None = opt(None, "Prompt length in policy tokens (default: the task's).")
    new_tokens: int | None = opt(None, "Maximum generated tokens (default: the task's).")
    min_new_tokens: int | None = opt(None, "Minimum generated tokens (default: new_tokens // 2).")
    max_train: int | None = opt(None, "Use at most this many training prompts.")
    max_eval: int | None = opt(None, "Use at most this many held-out prompts.")
    validation: int = opt(0, "Hold out this many training prompts (the same ones whatever the "
                             "seed) as a validation split: never trained on; choose settings "
                             "with `riskalign eval split=validation`, keep the test split for "
                             "the final evaluation.")

    def validate(self, p: str) -> None:
        for k in ("prompt_tokens", "new_tokens", "max_train", "max_eval"):
            v = getattr(self, k)
            _check(v is None or v >= 1, f"{p}.{k}", ">= 1", v)
        _check(self.validation >= 0, f"{p}.validation", ">= 0", self.validation)
        _check(self.min_new_tokens is None or self.min_new_tokens >= 0, f"{p}.min_new_tokens",
               ">= 0", self.min_new_tokens)


@dataclass
class RewardConfig:
    kind: str | None = opt(None, f"Reward source: {REWARD_KINDS.describe()}; default: the "
                                 f"task's.")
    target: str = opt("full", "What is scored: 'full' (prompt + completion) or 'completion'.")
    model: str | None = opt(None, "kind=hf: classifier folder or hub id; kind=ensemble: the "
                                  "ensemble folder.")
    label: str | None = opt(None, "kind=hf: label name or logit index to read (default: last).")
    sign: float = opt(1.0, "Multiplier on the score (-1 turns a toxicity logit into a reward).")
    function: str | None = opt(None, "kind=python: 'module:function' taking (prompts, completions) "
                                     "and returning one number per completion; the working "
                                     "directory is importable.")
    batch_size: int = opt(32, "Texts per classifier forward pass.")
    ensemble_method: str = opt("mean", f"kind=ensemble: {ENSEMBLE_METHODS.describe()}.")
    lam: float = opt(0.5, "kind=ensemble: lambda of uwo (mean - lambda * variance). adaptive "
                          "takes its lambda from ppo.init_kl_coef: b = mean first-batch "
                          "variance / init_kl_coef, as in the paper's code.")
    member: int = opt(0, "kind=ensemble, ensemble_method=single: which member.")
    shaper: str | None = opt(None, "Your own reward shaper, 'module:name': a RewardShaper "
                                   "(instance or class) or a function (prompts, completions) -> "
                                   "ShapedReward; replaces the reward source above.")

    def validate(self, p: str) -> None:
        _check(self.kind is None or self.kind in REWARD_KINDS, f"{p}.kind",
               f"one of {', '.join(REWARD_KINDS.names)}", self.kind)
        _check(self.shaper is None or is_custom(self.shaper), f"{p}.shaper", "'module:name'",
               self.shaper)
        _check(self.target in ("full", "completion"), f"{p}.target", "'full' or 'completion'",
               self.target)
        _check(math.isfinite(self.sign) and self.sign != 0, f"{p}.sign", "finite and non-zero",
               self.sign)
        _check(self.batch_size >= 1, f"{p}.batch_size", ">= 1", self.batch_size)
        if self.kind in ("hf", "ensemble"):
            _check(bool(self.model), f"{p}.model", f"set when kind={self.kind}", self.model)
        _check(self.ensemble_method in ENSEMBLE_METHODS, f"{p}.ensemble_method",
               f"one of {', '.join(ENSEMBLE_METHODS.names)}", self.ensemble_method)
        _check(self.kind == "ensemble" or self.ensemble_method == "mean", f"{p}.ensemble_method",
               "left at 'mean' unless kind=ensemble", self.ensemble_method)
        _check(math.isfinite(self.lam) and self.lam > 0, f"{p}.lam", "> 0", self.lam)
        _check(self.member >= 0, f"{p}.member", ">= 0", self.member)
        if self.kind == "python":
            _check(bool(self.function) and ":" in self.function, f"{p}.function",
                   "'module:function' when kind=python", self.function)


@dataclass
class PPOConfig:
    learning_rate: float = opt(1.41e-5, "AdamW learning rate.")
    batch_size: int = opt(128, "Trajectories generated per PPO iteration (B).")
    mini_batch_size: int = opt(16, "Trajectories per gradient step.")
    forward_batch_size: int = opt(16, "Trajectories per no-grad forward pass in the rollout.")
    ppo_epochs: int = opt(4, "Optimisation passes over each batch.")
    data_epochs: int = opt(1, "Passes over the prompt set; with batch_size this sets the number "
                              "of iterations M when total_iterations is not given.")
    total_iterations: int | None = opt(None, "PPO iterations M (default: data_epochs * "
                                             "floor(train prompts / batch_size)).")
    gamma: float = opt(1.0, "Discount factor in GAE.")
    lam: float = opt(0.95, "GAE lambda.")
    cliprange: float = opt(0.2, "Policy ratio clip epsilon.")
    cliprange_value: float = opt(0.2, "Value clip around the rollout values.")
    vf_coef: float = opt(0.1, "Weight of the value loss.")
    max_grad_norm: float = opt(1.0, "Gradient norm clip (0 disables).")
    weight_decay: float = opt(0.0, "AdamW weight decay.")
    adap_kl_ctrl: bool = opt(True, "Adaptive KL controller (Ziegler et al.); false = fixed beta.")
    init_kl_coef: float = opt(0.2, "Initial KL coefficient beta.")
    target_kl: float = opt(6.0, "KL target of the adaptive controller (nats per sequence).")
    horizon: float = opt(10000.0, "Horizon of the adaptive controller.")
    temperature: float = opt(1.0, "Sampling temperature.")
    top_k: int = opt(0, "Top-k sampling (0 = off).")
    top_p: float = opt(1.0, "Nucleus sampling mass (1 = off).")
    whiten_advantages: bool = opt(True, "Whiten advantages over valid tokens.")
    minibatches: str = opt("batch", "How the trajectories that train are cut into minibatches "
                                    "when only some train (RA-RLHF): 'batch' = as many per epoch "
                                    "as the whole batch gives (batch_size / mini_batch_size), so "
                                    "RA-RLHF takes as many optimizer steps as RLHF (the paper's "
                                    "setting); 'kept' = mini_batch_size each, so a tail of B0 "
                                    "takes ceil(B0 / mini_batch_size) steps.")
    whiten_over: str = opt("kept", "Whose advantages set the whitening mean and variance when "
                                   "only some trajectories train (RA-RLHF): 'kept' = the "
                                   "trajectories that train, 'batch' = the whole batch.")

    def validate(self, p: str) -> None:
        pos = ("learning_rate", "batch_size", "mini_batch_size", "forward_batch_size",
               "ppo_epochs", "data_epochs", "cliprange", "cliprange_value", "horizon",
               "temperature", "target_kl")
        for k in pos:
            v = getattr(self, k)
            _check(isinstance(v, (int, float)) and math.isfinite(v) and v > 0, f"{p}.{k}", "> 0", v)
        _check(self.mini_batch_size <= self.batch_size, f"{p}.mini_batch_size",
               f"<= batch_size ({self.batch_size})", self.mini_batch_size)
        _check(self.total_iterations is None or self.total_iterations >= 1,
               f"{p}.total_iterations", ">= 1", self.total_iterations)
        _check(0 <= self.gamma <= 1, f"{p}.gamma", "in [0, 1]", self.gamma)
        _check(0 <= self.lam <= 1, f"{p}.lam", "in [0, 1]", self.lam)
        _check(0 < self.top_p <= 1, f"{p}.top_p", "in (0, 1]", self.top_p)
        _check(self.top_k >= 0, f"{p}.top_k", ">= 0", self.top_k)
        for k in ("minibatches", "whiten_over"):
            _check(getattr(self, k) in ("batch", "kept"), f"{p}.{k}", "'batch' or 'kept'",
                   getattr(self, k))
        for k in ("vf_coef", "max_grad_norm", "weight_decay", "init_kl_coef"):
            v = getattr(self, k)
            _check(math.isfinite(v) and v >= 0, f"{p}.{k}", ">= 0", v)


@dataclass
class RiskConfig:
    alpha: float = opt(1.0, "RA-RLHF risk level in (0, 1]: the share of each batch kept once the "
                            "schedule ends (1 = standard RLHF).")
    warm_start: int = opt(30, "Iterations n trained on the whole batch before the share shrinks.")
    rho: float = opt(0.95, "The share reaches alpha at iteration ceil(rho * M).")
    rank_by: str = opt("kl_return", "Rank trajectories by 'kl_return' (sum_t r_t - beta kl_t, the "
                                    "paper's choice), 'score' (the raw task score) or 'gain' "
                                    "(the score minus the prompt's own score).")
    selector: str = opt("soft-risk", f"Which trajectories train: {SELECTORS.describe()}; or "
                                     f"'module:name', your own selector (iteration, rollout, "
                                     f"rewards, dist) -> (kept indices, stats).")

    def validate(self, p: str) -> None:
        _check(self.selector in SELECTORS or is_custom(self.selector), f"{p}.selector",
               f"one of {', '.join(SELECTORS.names)} or 'module:name'", self.selector)
        _check(0 < self.alpha <= 1, f"{p}.alpha", "in (0, 1]", self.alpha)
        _check(0 < self.rho <= 1, f"{p}.rho", "in (0, 1]", self.rho)
        _check(self.warm_start >= 0, f"{p}.warm_start", ">= 0", self.warm_start)
        _check(self.rank_by in ("kl_return", "score", "gain"), f"{p}.rank_by",
               "'kl_return', 'score' or 'gain'", self.rank_by)


@dataclass
class LogConfig:
    every: int = opt(1, "Print a line every this many iterations.")
    checkpoint_every: int = opt(10, "Checkpoint every this many iterations (and at the end).")
    keep_checkpoints: int = opt(1, "How many checkpoints to keep.")
    tensorboard: bool = opt(True, "Write TensorBoard event files under <output_dir>/tb.")
    eval_prompts: int = opt(64, "Held-out prompts scored before and after training (0 = skip).")
    report_to: str = opt("none", "Also log every iteration to: none, or wandb (Weights & Biases; "
                                 "needs `pip install wandb`; WANDB_MODE=offline logs without a "
                                 "network, WANDB_PROJECT names the project).")

    def validate(self, p: str) -> None:
        for k in ("every", "checkpoint_every", "keep_checkpoints"):
            _check(getattr(self, k) >= 1, f"{p}.{k}", ">= 1", getattr(self, k))
        _check(self.eval_prompts >= 0, f"{p}.eval_prompts", ">= 0", self.eval_prompts)
        _check(self.report_to in ("none", "wandb"), f"{p}.report_to", "none or wandb",
               self.report_to)


@dataclass
class RunConfig:
    """Everything one PPO run needs: seed, output folder, model, task, reward, PPO, risk and
    logging sections (``riskalign ppo --help-config`` lists every key with its help)."""

    seed: int = opt(0, "Seed for data order, sampling and initialisation.")
    output_dir: str = opt("runs/ppo", "Where logs, checkpoints and the final model go.")
    threads: int | None = opt(None, "torch CPU threads (default: torch's choice).")
    precision: str = precision_opt()
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "Policy model."})
    task: TaskConfig = field(default_factory=TaskConfig, metadata={"help": "Prompt task."})
    reward: RewardConfig = field(default_factory=RewardConfig, metadata={"help": "Reward source."})
    ppo: PPOConfig = field(default_factory=PPOConfig, metadata={"help": "PPO settings."})
    risk: RiskConfig = field(default_factory=RiskConfig, metadata={"help": "RA-RLHF soft risk."})
    log: LogConfig = field(default_factory=LogConfig, metadata={"help": "Logging, checkpoints."})

    def validate(self) -> "RunConfig":
        _check(self.threads is None or self.threads >= 1, "threads", ">= 1", self.threads)
        check_precision(self.precision)
        for f in dataclasses.fields(self):
            sub = getattr(self, f.name)
            if dataclasses.is_dataclass(sub):
                sub.validate(f.name)
        _check(not (self.risk.rank_by == "gain" and self.reward.target == "completion"),
               "risk.rank_by", "kl_return or score when reward.target is 'completion' (every "
               "prompt alone would score the same, so 'gain' would rank by score)",
               self.risk.rank_by)
        return self


# ---------------------------------------------------------------- loading and overrides

def _coerce(value: Any, tp: Any, name: str) -> Any:
    """Convert a YAML value to the annotated type, or raise ConfigError naming the field."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], name)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a mapping, got {value!r}")
        return _build(tp, value, name)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name} must be a list, got {value!r}")
        (inner,) = typing.get_args(tp)
        return [_coerce(v, inner, f"{name}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "3e-3" as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{name} must be a string, got {value!r}")
        return str(value)
    return value


def _field_default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _build(cls: type, data: dict, prefix: str = "") -> Any:
    """``cls`` from ``data``. A nested section given only in part keeps the other values of the
    field's own default (e.g. the demo's PPO preset), not those of the section's class."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"unknown config key '{where}{unknown[0]}' (allowed: "
                          f"{', '.join(sorted(fields))})")
    kwargs = {}
    for k, v in data.items():
        default = _field_default(fields[k])
        if isinstance(v, dict) and dataclasses.is_dataclass(default):
            v = _deep_merge(dataclasses.asdict(default), v)
        kwargs[k] = _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k)
    return cls(**kwargs)


def _deep_merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for k, v in update.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k),
                                                                              dict) else v
    return out


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key.sub=value")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def merge_overrides(data: dict, overrides: list[str]) -> dict:
    for text in overrides:
        path, value = _parse_override(text)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{text}': '{part}' is not a section")
        node[path[-1]] = value
    return data


def read_yaml(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(read_text(p, "config file")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {p}{line}: invalid YAML") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping at the top level")
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                cls: type = RunConfig) -> Any:
    """Build ``cls`` from an optional YAML file plus ``key.sub=value`` overrides, validated."""
    data = read_yaml(path) if path else {}
    data = merge_overrides(data, list(overrides or []))
    cfg = _build(cls, data)
    return cfg.validate()


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def first_difference(a: dict, b: dict, prefix: str = "") -> str:
    """The dotted name of the first key (sorted, depth first) whose values differ."""
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
                return first_difference(a[k], b[k], f"{prefix}{k}.")
            return f"{prefix}{k}"
    return prefix.rstrip(".")


def fill_missing(saved: dict, legacy: dict) -> dict:
    """``saved`` with the keys it predates filled in from ``legacy`` (nested like it), as they
    behaved before they existed; sections ``saved`` lacks altogether are left out."""
    out = dict(saved)
    for k, v in legacy.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = fill_missing(out[k], v)
        elif not isinstance(v, dict):
            out.setdefault(k, v)
    return out


def check_same_settings(saved: dict | None, now: dict, where: str,
                        legacy: dict | None = None, defaults: dict | None = None) -> None:
    """A study folder takes more runs only with the settings it was made with (one-line error
    naming the first key that differs). ``now`` is compared through JSON, as it is saved;
    settings added since ``saved`` was written count as ``legacy`` gives them, else as their
    default in ``defaults`` (an option added with a default that keeps the old behaviour)."""
    now = json.loads(json.dumps(now))
    if saved is not None and legacy:
        saved = fill_missing(saved, legacy)
    if saved is not None and defaults:  # only for what ``now`` compares
        saved = fill_missing(saved, json.loads(json.dumps(
            {k: v for k, v in defaults.items() if k in now})))
    if saved is not None and saved != now:
        raise ConfigError(f"{where} holds a study made with other settings "
                          f"('{first_difference(saved, now)}' differs); use another output "
                          "folder or the same settings")


def describe(cls: type = RunConfig, prefix: str = "", inst: Any = None) -> list[str]:
    """One line per option: ``key (default): help``. Nested sections show the defaults of their
    field's preset (e.g. the demo's PPO settings), not those of the section's class."""
    lines = []
    inst = cls() if inst is None else inst
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name}"
        value = getattr(inst, f.name)
        if dataclasses.is_dataclass(value):
            lines.append(f"{name}: {f.metadata.get('help', '')}")
            lines += describe(type(value), name + ".", value)
        else:
            lines.append(f"  {name} (default {value!r}): {f.metadata.get('help', '')}")
    return lines
