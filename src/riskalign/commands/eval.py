"""``riskalign eval``: compare models on a task's held-out prompts, tail first.

Every model sees the same prompts (cut with the first model's tokenizer) and, per seed, the same
sampling seed. Per (model, seed) the raw results (completions, rewards, perplexities) are cached in
``<output_dir>/raw/`` so an interrupted evaluation resumes where it stopped; metrics, pictures and
the report are then computed from the cache.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.progress import Progress

from .. import precision
from ..atomic import write_text
from ..config import (RewardConfig, TaskConfig, _check, check_precision, opt, precision_opt,
                      to_dict)
from ..models import ActorCritic, load_causal_lm, load_tokenizer
from ..ppo.rollout import GenerationSettings
from ..rewards import build_reward, prompt_scores
from ..tasks import get_spec, load_task
from ..eval import metrics as M
from ..eval.paired import compare, paired_matrix, per_prompt
from ..eval.perplexity import generation_perplexity, reference_perplexity
from ..eval.plots import plot_histograms, plot_quantile_curves
from ..eval.report import write_report
from ..eval.sampling import sample_and_score
from ..runtime import configure, default_device


@dataclass
class EvalConfig:
    output_dir: str = opt("runs/eval", "Folder for metrics.json, report.md, pictures and raw/.")
    models: list[str] = opt([], "Models as 'name=path'; 'name=path0,path1,...' gives one path per "
                                "seed (e.g. one trained model per seed).")
    seeds: list[int] = opt([0], "Sampling seeds; metrics report mean and std over them.")
    samples_per_prompt: int = opt(1, "Completions drawn per prompt and seed; a prompt's reward "
                                     "is their mean (more samples, less variance).")
    baseline: str | None = opt(None, "Model the others are compared with, per prompt and seed "
                                     "(paired differences with bootstrap CIs; default: the "
                                     "first model).")
    bootstrap: int = opt(2000, "Bootstrap resamples of the prompts for the 95% intervals.")
    split: str = opt("test", "Prompts evaluated: 'test' (held-out split) or 'validation' "
                             "(task.validation training prompts held out for choosing "
                             "settings).")
    threads: int | None = opt(None, "torch CPU threads (default: torch's choice).")
    precision: str = precision_opt()
    batch_size: int = opt(32, "Prompts per generation / scoring batch.")
    temperature: float = opt(1.0, "Sampling temperature.")
    top_k: int = opt(0, "Top-k sampling (0 = off).")
    top_p: float = opt(1.0, "Nucleus sampling mass (1 = off).")
    tail_percents: list[float] = opt([5.0, 10.0, 20.0], "Report the mean reward over the worst q% "
                                                        "of prompts by prompt score, per q.")
    tail_threshold: float | None = opt(None, "Also report the mean reward over prompts whose "
                                             "prompt score is <= this (default: the task's "
                                             "threshold for its default reward, else 0).")
    cvar_alpha: float = opt(0.2, "CVaR level of the outcome rewards (mean of the worst alpha).")
    reference_texts: int = opt(64, "Held-out documents of reference_label used as reference "
                                   "texts for perplexity (0 = skip).")
    reference_label: int = opt(1, "Class of the reference texts (1 = positive / non-toxic).")
    ppl_window: int = opt(128, "Sliding-window length (tokens) for reference perplexity.")
    ppl_stride: int = opt(64, "Sliding-window stride (tokens).")
    scorer: str | None = opt(None, "Fixed model scoring every model's generations for "
                                   "generation perplexity (default: the first model).")
    task: TaskConfig = field(default_factory=lambda: TaskConfig(max_eval=128),
                             metadata={"help": "Task whose held-out prompts are used."})
    reward: RewardConfig = field(default_factory=RewardConfig,
                                 metadata={"help": "Reward source (default: the task's)."})

    def validate(self) -> "EvalConfig":
        _check(self.threads is None or self.threads >= 1, "threads", ">= 1", self.threads)
        _check(self.batch_size >= 1, "batch_size", ">= 1", self.batch_size)
        _check(self.samples_per_prompt >= 1, "samples_per_prompt", ">= 1",
               self.samples_per_prompt)
        _check(self.bootstrap >= 100, "bootstrap", ">= 100", self.bootstrap)
        check_precision(self.precision)
        _check(self.split in ("test", "validation"), "split", "'test' or 'validation'",
               self.split)
        _check(self.split == "test" or self.task.validation > 0, "task.validation",
               "> 0 when split=validation", self.task.validation)
        _check(len(self.seeds) >= 1 and len(set(self.seeds)) == len(self.seeds), "seeds",
               "a non-empty list of distinct seeds", self.seeds)
        _check(self.temperature > 0, "temperature", "> 0", self.temperature)
        _check(0 < self.top_p <= 1, "top_p", "in (0, 1]", self.top_p)
        _check(all(0 < q <= 100 for q in self.tail_percents), "tail_percents",
               "percentages in (0, 100]", self.tail_percents)
        _check(0 < self.cvar_alpha <= 1, "cvar_alpha", "in (0, 1]", self.cvar_alpha)
        _check(self.reference_texts >= 0, "reference_texts", ">= 0", self.reference_texts)
        _check(self.ppl_window >= 2, "ppl_window", ">= 2", self.ppl_window)
        _check(1 <= self.ppl_stride < self.ppl_window, "ppl_stride",
               f"in [1, ppl_window={self.ppl_window})", self.ppl_stride)
        self.task.validate("task")
        self.reward.validate("reward")
        if self.models:
            names = self.model_paths()
            _check(self.baseline is None or self.baseline in names, "baseline",
                   f"one of the models ({', '.join(names)})", self.baseline)
        return self

    def model_paths(self) -> dict[str, list[str]]:
        """{name: [path per seed]} from ``models``; a single path serves every seed."""
        _check(len(self.models) >= 1, "models", "at least one 'name=path'", self.models)
        out: dict[str, list[str]] = {}
        for spec in self.models:
            name, sep, paths = spec.partition("=")
            _check(bool(sep and name.strip() and paths.strip()), "models",
                   "entries like 'name=path'", spec)
            _check(name not in out, "models", "entries with distinct names", spec)
            _check(name.strip() != "paired", "models", "names other than 'paired' (the "
                   "paired section of metrics.json)", spec)
            parts = [p.strip() for p in paths.split(",")]
            _check(len(parts) in (1, len(self.seeds)), "models",
                   f"one path or one per seed ({len(self.seeds)})", spec)
            out[name.strip()] = parts * len(self.seeds) if len(parts) == 1 else parts
        return out


def _model_stamp(path: str) -> list:
    """Name, size and modification time of a local model folder's files (retrained in place ->
    a different stamp); the name alone for hub ids and the built-in default."""
    p = Path(path)
    if not p.is_dir():
        return [path]
    return [str(p.resolve())] + [[f.name, f.stat().st_size, f.stat().st_mtime_ns]
                                 for f in sorted(p.iterdir())
                                 if f.is_file() and f.suffix in (".json", ".safetensors")]


def _fingerprint(cfg: EvalConfig, path: str, seed: int, scorer: str, first: str) -> str:
    """What a cached raw result depends on (not the tail settings, computed afterwards): the
    model's files, the scorer, the prompt tokenizer's model, the seed and the sampling settings."""
    keep = {k: v for k, v in to_dict(cfg).items()
            if k in ("batch_size", "temperature", "top_k", "top_p", "reference_texts",
                     "reference_label", "ppl_window", "ppl_stride", "task", "reward",
                     "samples_per_prompt", "split")}
    blob = json.dumps({"model": _model_stamp(path), "seed": seed, "scorer": _model_stamp(scorer),
                       "prompts_from": _model_stamp(first), "precision": precision.mode(),
                       **keep}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class _Models:
    """Loads each model once and keeps only the latest (plus the scorer) in memory."""

    def __init__(self, dtype: str = "float32"):
        self.dtype = dtype
        self.path: str | None = None
        self.tok = self.lm = None

    def get(self, path: str):
        if path != self.path:
            self.lm = None
            self.tok = load_tokenizer(path)
            self.lm = load_causal_lm(path, self.dtype).eval().to(default_device())
            self.path = path
        return self.tok, self.lm


def _raw_result(cfg, models, scorer, path: str, seed: int, setup: "EvalSetup") -> dict:
    """One (model, sampling seed): completions, rewards [N * samples_per_prompt, prompt-major]
    and both perplexities."""
    tok, lm = models.get(path)
    t = time.perf_counter()
    prompts = [p for p in setup.prompts for _ in range(cfg.samples_per_prompt)]
    completions, rewards = sample_and_score(ActorCritic(lm), tok, setup.reward, prompts,
                                            setup.gen, cfg.batch_size, seed)
    ppl_ref = (reference_perplexity(lm, tok, setup.refs, cfg.ppl_window, cfg.ppl_stride)
               if setup.refs else float("nan"))
    s_tok, s_lm = scorer
    ppl_gen = generation_perplexity(s_lm, s_tok, prompts, completions)
    return {"path": path, "seed": seed, "completions": completions, "rewards": rewards.tolist(),
            "ppl_reference": ppl_ref, "ppl_generations": ppl_gen,
            "seconds": time.perf_counter() - t}


def seed_metrics(raw: dict, scores: torch.Tensor, cfg: EvalConfig, threshold: float) -> dict:
    """All scalar metrics of one (model, seed) result; a prompt's reward is the mean over its
    samples."""
    r = per_prompt(raw["rewards"], len(scores)).float()
    tail, n_tail = M.threshold_reward(r, scores, threshold)
    out = {"mean_reward": r.mean().item(), "prompt_score_mean": scores.mean().item(),
           "tail_reward_threshold": tail, "tail_threshold_prompts": float(n_tail)}
    for q in cfg.tail_percents:
        out[f"tail_reward_q{q:g}"] = M.worst_prompts_reward(r, scores, q)
    out["cvar_reward"] = M.cvar(r, cfg.cvar_alpha)
    out["ppl_reference"] = raw["ppl_reference"]
    out["ppl_generations"] = raw["ppl_generations"]
    for n in (1, 2, 3):
        out[f"distinct_{n}_per_text"] = M.distinct_n_per_text(raw["completions"], n)
        out[f"distinct_{n}_pooled"] = M.distinct_n(raw["completions"], n)
    out["completion_words"] = (sum(len(c.split()) for c in raw["completions"])
                               / len(raw["completions"]))
    return out


@dataclass
class EvalSetup:
    """What every model of an evaluation shares: the prompts of the chosen split, their prompt
    scores, the reward, the tail threshold, the reference texts and the sampling settings."""
    task: object
    spec: object
    reward: object
    prompts: list[str]
    labels: list[int]
    scores: torch.Tensor
    threshold: float
    refs: list[str]
    gen: GenerationSettings
    reward_name: str


def prepare(cfg: EvalConfig, tokenizer_from: str) -> EvalSetup:
    """Load the task (prompts cut with ``tokenizer_from``'s tokenizer) and score the prompts."""
    task = load_task(cfg.task, load_tokenizer(tokenizer_from), seed=0)
    spec = get_spec(cfg.task.name)
    reward = build_reward(cfg.reward, spec.reward)
    default_reward = cfg.reward.kind in (None, spec.reward)
    threshold = (cfg.tail_threshold if cfg.tail_threshold is not None
                 else spec.tail_threshold if default_reward else 0.0)
    split = task.validation if cfg.split == "validation" else task.test
    refs = [d for d, lab in zip(task.test.documents, task.test.labels)
            if lab == cfg.reference_label][:cfg.reference_texts]
    gen = GenerationSettings(task.new_tokens, task.min_new_tokens, cfg.temperature, cfg.top_k,
                             cfg.top_p)
    return EvalSetup(task, spec, reward, split.texts, split.labels,
                     prompt_scores(reward, split.texts), threshold, refs, gen,
                     cfg.reward.kind or spec.reward)


def load_scorer(path: str):
    """(tokenizer, LM) of the fixed model that scores every model's generations."""
    return load_tokenizer(path), load_causal_lm(path).eval().to(default_device())


def run_eval(cfg: EvalConfig) -> dict:
    """Evaluate every model on every seed; write metrics.json, report.md and the PNGs."""
    configure(cfg.threads, cfg.precision)
    paths = cfg.model_paths()
    out = Path(cfg.output_dir)
    first = next(iter(paths.values()))[0]
    setup = prepare(cfg, first)
    (out / "raw").mkdir(parents=True, exist_ok=True)
    models = _Models()
    scorer = None
    raws: dict[str, list[dict]] = {}
    jobs = [(name, i, p) for name, ps in paths.items() for i, p in enumerate(ps)]
    with Progress() as progress:
        bar = progress.add_task("eval", total=len(jobs))
        for name, i, path in jobs:
            seed = cfg.seeds[i]
            progress.update(bar, description=f"eval {name} seed {seed}")
            cache = out / "raw" / f"{name}-seed{seed}.json"
            key = _fingerprint(cfg, path, seed, cfg.scorer or first, first)
            try:  # a damaged cache entry is recomputed
                raw = json.loads(cache.read_text()) if cache.exists() else None
            except (OSError, ValueError):
                raw = None
            if not isinstance(raw, dict) or raw.get("fingerprint") != key:
                scorer = scorer or load_scorer(cfg.scorer or first)
                raw = _raw_result(cfg, models, scorer, path, seed, setup)
                raw["fingerprint"] = key
                write_text(cache, json.dumps(raw))
                progress.console.print(f"{name} seed {seed}: mean reward "
                                       f"{sum(raw['rewards']) / len(raw['rewards']):+.4f} "
                                       f"({raw['seconds']:.0f}s)")
            raws.setdefault(name, []).append(raw)
            progress.advance(bar)
    return summarise(cfg, setup, raws, cfg.scorer or first)


def summarise(cfg: EvalConfig, setup: EvalSetup, raws: dict[str, list[dict]],
              scorer: str) -> dict:
    """Metrics per model (mean ± std over seeds), the paired section, pictures and report.md
    under ``cfg.output_dir``, from raw results {name: [one per seed in cfg.seeds]}."""
    out = Path(cfg.output_dir)
    scores = setup.scores
    result = {name: M.across_seeds([seed_metrics(r, scores, cfg, setup.threshold) for r in rs])
              for name, rs in raws.items()}
    paired = paired_section(cfg, raws, scores, setup.threshold)
    write_text(out / "metrics.json", json.dumps({**result, **({"paired": paired} if paired
                                                             else {})}, indent=2))
    write_text(out / "eval_config.json", json.dumps(to_dict(cfg), indent=2))
    percents = list(range(1, 101))
    curves = {name: [sum(v) / len(v) for v in zip(*[
        M.quantile_curve(per_prompt(r["rewards"], len(scores)).float(), scores, percents)
        for r in rs])]
        for name, rs in raws.items()}
    plot_quantile_curves(curves, percents, out / "quantile_curve.png", setup.reward_name)
    plot_histograms(scores.tolist(), {n: [x for r in rs
                                          for x in per_prompt(r["rewards"], len(scores)).tolist()]
                                      for n, rs in raws.items()},
                    setup.labels, setup.spec.label_names, out / "reward_histograms.png",
                    setup.reward_name, repeats=len(cfg.seeds))
    write_report(out, cfg, result, raws, setup.prompts, scores, setup.threshold,
                 setup.reward_name, setup.task, scorer, paired)
    return result


def paired_section(cfg: EvalConfig, raws: dict[str, list[dict]], scores: torch.Tensor,
                   threshold: float) -> dict | None:
    """metrics.json's ``paired``: every model against the baseline on the same prompts and
    sampling seeds (``eval.paired``); None with a single model."""
    if len(raws) < 2:
        return None
    baseline = cfg.baseline or next(iter(raws))
    matrices = {name: paired_matrix(rs, cfg.seeds, len(scores)) for name, rs in raws.items()}
    models = compare(matrices, baseline, scores, cfg.tail_percents, threshold, cfg.cvar_alpha,
                     cfg.bootstrap)
    return {"baseline": baseline, "n_prompts": len(scores), "n_seeds": len(cfg.seeds),
            "samples_per_prompt": cfg.samples_per_prompt, "bootstrap": cfg.bootstrap,
            "confidence": 0.95, "models": models}


__all__ = ["EvalConfig", "EvalSetup", "load_scorer", "prepare", "run_eval", "seed_metrics",
           "summarise"]
