"""``riskalign overopt``: the reward-hacking study, offline.

A gold reward judges while PPO optimises a learned proxy (Gao et al.'s semi-synthetic setup):
1. the starting policy answers each prompt twice and the gold reward labels the pair -> ``prefs/``;
2. an ensemble of proxy reward models is trained on those labels -> ``ensemble/``;
3. PPO from the same policy, seed and budget for each ensemble method (single, mean, min, uwo,
   adaptive) -> ``<method>/``; every ``eval_every`` iterations, on held-out prompts: mean gold
   reward, mean proxy reward (the ensemble's standardised member mean) and KL to the reference
   (sum over response tokens of log pi - log pi_ref, mean over samples);
4. ``results.json``, ``overopt_curves.png`` and ``report.md``.
Each stage is skipped when its output exists, and PPO runs resume from their checkpoints.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console

from .atomic import write_text
from .config import RunConfig, _check, check_precision, opt, precision_opt
from .demo import cpu_rl_defaults, cpu_task
from .eval.plots import plot_overopt_curves
from .models import gpu_of, load_policy, load_tokenizer
from .ppo.rollout import GenerationSettings, collect
from .reward_model.synthetic import SyntheticPrefsConfig, make_synthetic_preferences
from .reward_model.train import MANIFEST, RewardTrainConfig, train_reward_models
from .rewards import build_reward
from .rewards.ensemble import EnsembleReward
from .rewards.shaping import ENSEMBLE_METHODS, PlainShaper
from .tasks import get_spec, load_task
from .train import run_ppo
from .runtime import configure


def _rl_defaults() -> RunConfig:
    cfg = cpu_rl_defaults()
    cfg.ppo.total_iterations, cfg.log.checkpoint_every = 24, 4
    return cfg


@dataclass
class OveroptConfig:
    output_dir: str = opt("runs/overopt", "Folder for every stage's output and the report.")
    policy: str = opt("smollm2-135m", "Starting policy: writes the preference pairs and starts "
                                      "every PPO run.")
    methods: list[str] = opt(list(ENSEMBLE_METHODS), "Ensemble methods to compare.")
    lam: float = opt(0.5, "lambda of uwo (adaptive's lambda is rl.ppo.init_kl_coef, the KL "
                          "coefficient every method starts from).")
    eval_every: int = opt(4, "Held-out gold / proxy / KL every this many iterations.")
    eval_prompts: int = opt(48, "Held-out prompts for those figures.")
    threads: int = opt(2, "torch CPU threads.")
    precision: str = precision_opt()
    prefs: SyntheticPrefsConfig = field(
        default_factory=lambda: SyntheticPrefsConfig(train_pairs=256, test_pairs=64,
                                                     label_noise=0.1, task=cpu_task()),
        metadata={"help": "Synthetic preference pairs (policy and output_dir set here)."})
    reward: RewardTrainConfig = field(
        default_factory=lambda: RewardTrainConfig(ensemble=5, epochs=3, learning_rate=1e-4,
                                                  max_length=64),
        metadata={"help": "Proxy ensemble training (data and output_dir set here)."})
    rl: RunConfig = field(default_factory=_rl_defaults,
                          metadata={"help": "PPO settings shared by every method."})

    def validate(self) -> "OveroptConfig":
        _check(len(self.methods) >= 1 and set(self.methods) <= set(ENSEMBLE_METHODS), "methods",
               f"a non-empty list from {', '.join(ENSEMBLE_METHODS)}", self.methods)
        _check(self.eval_every >= 1, "eval_every", ">= 1", self.eval_every)
        _check(self.eval_prompts >= 1, "eval_prompts", ">= 1", self.eval_prompts)
        _check(self.lam > 0, "lam", "> 0", self.lam)
        check_precision(self.precision)
        if any(m in ("uwo", "adaptive") for m in self.methods):
            _check(self.reward.ensemble >= 2, "reward.ensemble", ">= 2 for uwo / adaptive",
                   self.reward.ensemble)
        self.prefs.validate()
        self.reward.validate()
        self.rl.validate()
        return self


class HeldOutProbe:
    """Gold reward, proxy reward and KL of fresh samples on fixed held-out prompts."""

    def __init__(self, prompts: list[str], gold, proxy: EnsembleReward, seed: int,
                 gen: GenerationSettings, batch_size: int):
        self.prompts, self.gold, self.proxy, self.seed = prompts, PlainShaper(gold), proxy, seed
        self.gen, self.batch_size = gen, batch_size

    def __call__(self, policy, ref, tokenizer) -> dict:
        with torch.random.fork_rng(devices=gpu_of(policy)):
            torch.manual_seed(self.seed)
            ro = collect(policy, ref, tokenizer, self.gold, self.prompts, self.gen,
                         self.batch_size, {})
        proxy = self.proxy(ro.prompts, ro.completions)
        return {"heldout_gold": ro.scores.mean().item(), "heldout_proxy": proxy.mean().item(),
                "heldout_kl": (ro.logprobs - ro.ref_logprobs).sum(1).mean().item()}


def run_overopt(cfg: OveroptConfig) -> dict:
    console = Console()
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    stages = 2 + len(cfg.methods)

    console.rule(f"[bold]stage 1/{stages}: gold-labelled preference pairs")
    prefs = copy.deepcopy(cfg.prefs)
    prefs.policy, prefs.output_dir, prefs.threads = cfg.policy, str(out / "prefs"), cfg.threads
    prefs.precision = cfg.precision
    if not (out / "prefs" / "test.jsonl").exists():
        make_synthetic_preferences(prefs)

    console.rule(f"[bold]stage 2/{stages}: proxy reward ensemble of {cfg.reward.ensemble}")
    rcfg = copy.deepcopy(cfg.reward)
    rcfg.data, rcfg.eval_data = str(out / "prefs" / "train.jsonl"), str(out / "prefs" / "test.jsonl")
    rcfg.output_dir, rcfg.threads = str(out / "ensemble"), cfg.threads
    rcfg.precision = cfg.precision
    if not (out / "ensemble" / MANIFEST).exists():
        train_reward_models(rcfg)

    configure(cfg.threads, cfg.precision)
    gold = build_reward(prefs.reward, get_spec(prefs.task.name).reward)  # the labeller
    proxy = EnsembleReward(out / "ensemble", cfg.rl.reward.target, cfg.rl.reward.batch_size)
    tokenizer = load_tokenizer(cfg.policy)
    task = load_task(cfg.rl.task, tokenizer, cfg.rl.seed)
    p = cfg.rl.ppo
    gen = GenerationSettings(task.new_tokens, task.min_new_tokens, p.temperature, p.top_k, p.top_p)
    probe = HeldOutProbe(task.test.texts[:cfg.eval_prompts], gold, proxy, cfg.rl.seed + 777, gen,
                         p.forward_batch_size)

    def on_step(trainer, stats: dict) -> None:
        if stats["iteration"] % cfg.eval_every == 0 or stats["iteration"] == trainer.total:
            stats.update(probe(trainer.policy, trainer.ref, trainer.tokenizer))

    curves = {}
    for i, method in enumerate(cfg.methods):
        console.rule(f"[bold]stage {3 + i}/{stages}: PPO on the proxy, method {method}")
        rl = copy.deepcopy(cfg.rl)
        rl.model.policy, rl.threads, rl.precision = cfg.policy, cfg.threads, cfg.precision
        rl.output_dir = str(out / method)
        rl.reward.kind, rl.reward.model = "ensemble", str(out / "ensemble")
        rl.reward.ensemble_method, rl.reward.lam = method, cfg.lam
        run_dir = Path(rl.output_dir)
        start = _start_point(out, cfg, probe, tokenizer)
        if not (run_dir / "summary.json").exists():
            run_ppo(rl, resume=(run_dir / "checkpoints" / "latest").exists(), title=method,
                    on_step=on_step)
        logs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x]
        curves[method] = [{"iteration": 0, **start}] + [
            {k: h[k] for k in ("iteration", "heldout_gold", "heldout_proxy", "heldout_kl")}
            for h in logs if "heldout_gold" in h]
    results = {m: _summary(c) for m, c in curves.items()}
    write_text(out / "results.json", json.dumps(results, indent=2))
    plot_overopt_curves(curves, out / "overopt_curves.png")
    minutes = (time.perf_counter() - t_all) / 60
    _write_report(out, cfg, results, minutes)
    console.print(f"overopt finished in {minutes:.1f} min; report: {out / 'report.md'}")
    return results


def _start_point(out: Path, cfg: OveroptConfig, probe: HeldOutProbe, tokenizer) -> dict:
    """Held-out figures of the starting policy (iteration 0), computed once."""
    f = out / "start.json"
    if f.exists():
        return json.loads(f.read_text())
    model = copy.deepcopy(cfg.rl.model)
    model.policy = cfg.policy
    policy, ref = load_policy(model)
    figures = probe(policy, ref, tokenizer)
    write_text(f, json.dumps(figures))
    return figures


def _summary(curve: list[dict]) -> dict:
    best = max(curve, key=lambda c: c["heldout_gold"])
    last = curve[-1]
    return {"best_gold": best["heldout_gold"], "best_iteration": best["iteration"],
            "final_gold": last["heldout_gold"], "final_proxy": last["heldout_proxy"],
            "final_kl": last["heldout_kl"], "start_gold": curve[0]["heldout_gold"],
            "curve": curve}


def _write_report(out: Path, cfg: OveroptConfig, results: dict, minutes: float) -> None:
    p = cfg.rl.ppo
    pairs = sum(1 for ln in (out / "prefs" / "train.jsonl").read_text().splitlines() if ln)
    lines = ["# Reward over-optimisation study", "",
             f"Gold reward `{cfg.prefs.reward.kind or get_spec(cfg.rl.task.name).reward}` on "
             f"`{cfg.rl.task.name}`; proxy: {cfg.reward.ensemble} reward models "
             f"(`{cfg.reward.backbone}`) trained on {pairs} gold-labelled pairs from "
             f"{cfg.prefs.train_pairs} prompts (ties dropped; label noise "
             f"{cfg.prefs.label_noise:g}); PPO from `{cfg.policy}` with LoRA, "
             f"{p.total_iterations} iterations of {p.batch_size}, lr {p.learning_rate:g}, "
             f"initial KL coefficient {p.init_kl_coef:g}, lambda {cfg.lam:g}; held-out figures on "
             f"{cfg.eval_prompts} prompts every {cfg.eval_every} iterations. Wall time "
             f"{minutes:.1f} min.", "",
             "| method | start gold | best gold (iteration) | final gold | final proxy | final KL |",
             "|---|---|---|---|---|---|"]
    for m, r in results.items():
        lines.append(f"| {m} | {r['start_gold']:+.3f} | {r['best_gold']:+.3f} "
                     f"({r['best_iteration']}) | {r['final_gold']:+.3f} | "
                     f"{r['final_proxy']:+.3f} | {r['final_kl']:.2f} |")
    lines += ["", "![Gold reward, proxy reward and KL per iteration](overopt_curves.png)", ""]
    write_text(out / "report.md", "\n".join(lines))


__all__ = ["HeldOutProbe", "OveroptConfig", "run_overopt"]
