"""``riskalign overopt``: the reward-hacking study, offline.

A gold reward judges while PPO optimises a learned proxy (Gao et al.'s semi-synthetic setup):
1. the starting policy answers each prompt twice and the gold reward labels the pair -> ``prefs/``;
2. an ensemble of proxy reward models is trained on those labels -> ``ensemble/``;
3. per training seed, PPO from the same policy and budget for each ensemble method (single,
   mean, min, uwo, adaptive) -> ``<method>/seed-<s>/``; every ``eval_every`` iterations, on
   held-out prompts: mean gold reward, mean proxy reward (the ensemble's standardised member
   mean) and KL to the reference (sum over response tokens of log pi - log pi_ref, mean over
   samples); with ``kl_match``, ``adaptive`` again at a KL matched to ``mean``'s
   (``adaptive-kl-matched/``);
4. ``results.json`` (per method: figures averaged over seeds, the final gold with a 95% bootstrap
   interval over prompts, the final gold minus ``mean``'s and, for ``adaptive`` and its
   KL-matched run, minus every other method's, paired per prompt and seed, with a Student-t
   interval over the per-seed differences as well),
   ``overopt_curves.png``, ``gold_vs_kl.png`` (gold against sqrt(KL), Gao et al.'s frontier)
   and ``report.md``.
Each stage is skipped when its output exists, and PPO runs resume from their checkpoints.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console

from ..atomic import write_text
from ..config import (RunConfig, _check, check_precision, check_same_settings, opt, precision_opt,
                     to_dict)
from ..precision import resolve as resolve_precision
from ..presets import cpu_run as cpu_rl_defaults, cpu_task
from ..eval.paired import bootstrap_draws, mean_diff, paired_interval, with_seed_interval
from ..eval.plots import plot_gold_vs_kl, plot_overopt_curves
from ..models import gpu_of, load_policy, load_tokenizer
from ..ppo.rollout import GenerationSettings, collect
from ..reward_model.synthetic import SyntheticPrefsConfig, make_synthetic_preferences
from ..reward_model.train import MANIFEST, RewardTrainConfig, train_reward_models
from ..rewards import build_reward
from ..rewards.ensemble import EnsembleReward
from ..registry import ENSEMBLE_METHODS
from ..rewards.shaping import PlainShaper
from ..tasks import get_spec, load_task
from ..ppo.run import run_ppo
from ..runtime import configure
from ..files import read_json, read_jsonl


def _rl_defaults() -> RunConfig:
    cfg = cpu_rl_defaults()
    cfg.ppo.total_iterations, cfg.log.checkpoint_every = 24, 4
    return cfg


@dataclass
class OveroptConfig:
    output_dir: str = opt("runs/overopt", "Folder for every stage's output and the report.")
    policy: str = opt("smollm2-135m", "Starting policy: writes the preference pairs and starts "
                                      "every PPO run.")
    methods: list[str] = opt(list(ENSEMBLE_METHODS.names), "Ensemble methods to compare.")
    lam: float = opt(0.5, "lambda of uwo (adaptive's lambda is rl.ppo.init_kl_coef, the KL "
                          "coefficient every method starts from).")
    eval_every: int = opt(4, "Held-out gold / proxy / KL every this many iterations.")
    eval_prompts: int = opt(48, "Held-out prompts for those figures.")
    seeds: list[int] = opt([0, 1, 2], "Training seeds; each runs every method (seed s also "
                                      "samples the held-out figures with seed s + 777).")
    kl_match: bool = opt(True, "Also run adaptive at a KL matched to mean's (needs both "
                               "methods): its initial KL coefficient is rescaled from training "
                               "KLs (by their ratio, then by log-log interpolation once mean's "
                               "is bracketed) until its final training KL is within "
                               "kl_tolerance of mean's (never chosen from gold).")
    kl_tolerance: float = opt(0.2, "Relative tolerance of the KL match.")
    kl_match_tries: int = opt(4, "Most extra runs per seed for the KL match (0: no KL match); "
                              "may be raised for a folder already run: it only adds tries.")
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
        _check(len(self.methods) >= 1 and set(self.methods) <= set(ENSEMBLE_METHODS.names)
               and len(set(self.methods)) == len(self.methods), "methods",
               f"a non-empty list of distinct methods from {', '.join(ENSEMBLE_METHODS.names)}",
               self.methods)
        _check(self.eval_every >= 1, "eval_every", ">= 1", self.eval_every)
        _check(self.eval_prompts >= 1, "eval_prompts", ">= 1", self.eval_prompts)
        _check(len(self.seeds) >= 1 and len(set(self.seeds)) == len(self.seeds), "seeds",
               "a non-empty list of distinct seeds", self.seeds)
        _check(0 < self.kl_tolerance < 1, "kl_tolerance", "in (0, 1)", self.kl_tolerance)
        _check(self.kl_match_tries >= 0, "kl_match_tries", ">= 0", self.kl_match_tries)
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
                "heldout_kl": (ro.logprobs - ro.ref_logprobs).sum(1).mean().item(),
                "heldout_gold_per_prompt": ro.scores.tolist()}


# Options a study folder may take new values of: they change no finished run, only add runs.
_MAY_CHANGE = ("output_dir", "threads", "seeds", "methods", "kl_match_tries")


def run_overopt(cfg: OveroptConfig) -> dict:
    console = Console()
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, cfg)
    t_all = time.perf_counter()
    stages = 2 + len(cfg.seeds)

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
    prompts = task.test.texts[:cfg.eval_prompts]
    runs: dict[str, list[dict]] = {}
    for k, seed in enumerate(cfg.seeds):
        console.rule(f"[bold]stage {3 + k}/{stages}: PPO on the proxy, seed {seed}")
        probe = HeldOutProbe(prompts, gold, proxy, seed + 777, gen, p.forward_batch_size)
        start = _start_point(out, cfg, probe, tokenizer, seed)
        for method in cfg.methods:
            runs.setdefault(method, []).append(
                _run(cfg, out, method, method, seed, p.init_kl_coef, probe, start))
        if cfg.kl_match and {"mean", "adaptive"} <= set(cfg.methods) and cfg.kl_match_tries:
            runs.setdefault(KL_MATCHED, []).append(
                _kl_matched(cfg, out, seed, runs["adaptive"][-1], runs["mean"][-1]["train_kl"],
                            probe, start))
    results = _summarise(runs)
    write_text(out / "results.json", json.dumps(results, indent=2))
    curves = {m: r["curve"] for m, r in results.items()}
    plot_overopt_curves(curves, out / "overopt_curves.png")
    plot_gold_vs_kl(curves, out / "gold_vs_kl.png")
    minutes = (time.perf_counter() - t_all) / 60
    _write_report(out, cfg, results, minutes)
    console.print(f"overopt finished in {minutes:.1f} min; report: {out / 'report.md'}")
    return results


KL_MATCHED = "adaptive-kl-matched"


def _check_settings(out: Path, cfg: OveroptConfig) -> None:
    """Every stage is reused by file, so a folder takes more runs only with the settings in its
    ``settings.json`` (options in ``_MAY_CHANGE`` aside); then record them."""
    settings = out / "settings.json"
    now = {k: v for k, v in to_dict(cfg).items() if k not in _MAY_CHANGE}
    now["precision"] = resolve_precision(cfg.precision)
    saved = read_json(settings, "study settings") if settings.exists() else None
    if saved is not None:
        saved = {k: v for k, v in saved.items() if k not in _MAY_CHANGE}
    check_same_settings(saved, now, str(out), defaults=to_dict(OveroptConfig()))
    write_text(settings, json.dumps(now, indent=2))


def _run(cfg: OveroptConfig, out: Path, name: str, method: str, seed: int, kl_coef: float,
         probe: "HeldOutProbe", start: dict) -> dict:
    """One PPO run on the proxy (resumable; skipped when done) -> its held-out curve, the final
    gold reward per held-out prompt, its training-side KL, its initial KL coefficient and the
    mean per-sample KL coefficient applied on its first and last iteration."""
    rl = copy.deepcopy(cfg.rl)
    rl.model.policy, rl.threads, rl.precision = cfg.policy, cfg.threads, cfg.precision
    rl.seed, rl.ppo.init_kl_coef = seed, kl_coef
    rl.output_dir = str(out / name / f"seed-{seed}")
    rl.reward.kind, rl.reward.model = "ensemble", str(out / "ensemble")
    rl.reward.ensemble_method, rl.reward.lam = method, cfg.lam
    run_dir = Path(rl.output_dir)

    def on_step(trainer, stats: dict) -> None:
        last = stats["iteration"] == trainer.total
        if stats["iteration"] % cfg.eval_every == 0 or last:
            figures = probe(trainer.policy, trainer.ref, trainer.tokenizer)
            per_prompt = figures.pop("heldout_gold_per_prompt")
            stats.update(figures)
            if last:
                write_text(run_dir / "final_probe.json", json.dumps(per_prompt))

    if not (run_dir / "summary.json").exists():
        run_ppo(rl, resume="auto", title=f"{name} seed {seed}", on_step=on_step)
    logs = read_jsonl(run_dir / "metrics.jsonl", "metrics log", torn_tail=True)
    tail = logs[-min(4, len(logs)):]
    trained = read_json(run_dir / "config.json", "run config")["ppo"]["init_kl_coef"]
    return {"seed": seed, "kl_coef": trained,
            "train_kl": sum(h["kl"] for h in tail) / len(tail),
            "kl_coef_applied": [logs[0].get("kl_coef_mean"), logs[-1].get("kl_coef_mean")],
            "gold_per_prompt": read_json(run_dir / "final_probe.json", "probe", expect=list),
            "curve": [{"iteration": 0, **start}] + [
                {k: h[k] for k in ("iteration", "heldout_gold", "heldout_proxy", "heldout_kl")}
                for h in logs if "heldout_gold" in h]}


def _kl_matched(cfg: OveroptConfig, out: Path, seed: int, adaptive: dict, target: float,
                probe: "HeldOutProbe", start: dict) -> dict:
    """``adaptive`` with an initial KL coefficient chosen so that its training KL (mean batch
    KL of the last 4 iterations; never the gold reward) lands within ``kl_tolerance`` of
    ``mean``'s, in at most ``kl_match_tries`` extra runs (see ``_next_kl_coef``). The closest
    run is kept, with ``matched`` saying whether it is within the tolerance."""
    if not target > 0:
        raise ValueError(f"overopt: mean's training KL is {target:.4g} for seed {seed}; a KL "
                         "match needs a positive one")

    def miss(r: dict) -> float:
        return abs(r["train_kl"] / target - 1)

    tried = [adaptive]
    for k in range(cfg.kl_match_tries):
        if miss(min(tried, key=miss)) <= cfg.kl_tolerance:
            break
        tried.append(_run(cfg, out, f"{KL_MATCHED}/try-{k + 1}", "adaptive", seed,
                          _next_kl_coef(tried, target), probe, start))
    best = min(tried, key=miss)
    return {**best, "target_train_kl": target, "matched": miss(best) <= cfg.kl_tolerance,
            "tries": [{"kl_coef": r["kl_coef"], "train_kl": r["train_kl"]} for r in tried]}


def _next_kl_coef(tried: list[dict], target: float) -> float:
    """The next initial KL coefficient to try. Once the runs so far bracket ``target`` (one
    training KL above it, one below), interpolate between the nearest two on a log-log line,
    log c = log c_hi + (log target - log kl_hi) / (log kl_lo - log kl_hi) * (log c_lo - log c_hi);
    until then scale the last run's coefficient by its KL over the target (clamped to
    [0.1, 10]) (in the 135M study this undershot: KL fell more slowly than the coefficient
    rose, and not smoothly)."""
    above = [r for r in tried if r["train_kl"] > target]
    below = [r for r in tried if 0 < r["train_kl"] < target]
    if above and below:
        hi = min(above, key=lambda r: r["train_kl"])
        lo = max(below, key=lambda r: r["train_kl"])
        t = math.log(target / hi["train_kl"]) / math.log(lo["train_kl"] / hi["train_kl"])
        return math.exp(math.log(hi["kl_coef"]) + t * math.log(lo["kl_coef"] / hi["kl_coef"]))
    last = tried[-1]
    return last["kl_coef"] * min(10.0, max(0.1, last["train_kl"] / target))


def _mean_curve(curves: list[list[dict]]) -> list[dict]:
    """Point-wise mean over seeds of held-out curves (their common iterations)."""
    n = min(len(c) for c in curves)
    return [{"iteration": curves[0][i]["iteration"],
             **{k: sum(c[i][k] for c in curves) / len(curves)
                for k in ("heldout_gold", "heldout_proxy", "heldout_kl")}} for i in range(n)]


def _summarise(runs: dict[str, list[dict]]) -> dict:
    """Per method: figures averaged over seeds (and per seed), its final held-out gold with a
    95% bootstrap interval over prompts (``final_gold_ci``), its final gold minus ``mean``'s
    and, for ``adaptive`` and its KL-matched run, minus every other method's
    (``final_gold_versus``): paired per prompt and seed (see ``_paired``)."""
    results = {}
    for m, rs in runs.items():
        curve = _mean_curve([r["curve"] for r in rs])
        best = max(curve, key=lambda c: c["heldout_gold"])
        results[m] = {"seeds": [r["seed"] for r in rs], "start_gold": curve[0]["heldout_gold"],
                      "best_gold": best["heldout_gold"], "best_iteration": best["iteration"],
                      "final_gold": curve[-1]["heldout_gold"],
                      "final_proxy": curve[-1]["heldout_proxy"],
                      "final_kl": curve[-1]["heldout_kl"],
                      "final_gold_by_seed": [r["curve"][-1]["heldout_gold"] for r in rs],
                      "final_kl_by_seed": [r["curve"][-1]["heldout_kl"] for r in rs],
                      "train_kl": sum(r["train_kl"] for r in rs) / len(rs),
                      "train_kl_by_seed": [r["train_kl"] for r in rs],
                      "kl_coef_by_seed": [r["kl_coef"] for r in rs],
                      "kl_coef_applied_by_seed": [r["kl_coef_applied"] for r in rs],
                      "curve": curve}
        if m == KL_MATCHED:
            results[m]["matched_by_seed"] = [r["matched"] for r in rs]
            results[m]["target_train_kl_by_seed"] = [r["target_train_kl"] for r in rs]
            results[m]["tries_by_seed"] = [r["tries"] for r in rs]
    mats = {m: torch.tensor([r["gold_per_prompt"] for r in rs], dtype=torch.float64)
            for m, rs in runs.items()}
    n = next(iter(mats.values())).shape[1]
    draws = bootstrap_draws(n, 2000, 0)
    for m, b in mats.items():
        ci = paired_interval(torch.zeros_like(b), b, torch.zeros(n, dtype=torch.float64),
                             mean_diff, draws)
        results[m]["final_gold_ci"] = [ci["ci_low"], ci["ci_high"]]
        if m != "mean" and "mean" in mats:
            results[m]["final_gold_minus_mean"] = _paired(mats["mean"], b, draws)
        if m in ("adaptive", KL_MATCHED):
            results[m]["final_gold_versus"] = {o: _paired(a, b, draws)
                                               for o, a in mats.items() if o != m}
    return results


def _paired(a: torch.Tensor, b: torch.Tensor, draws: torch.Tensor) -> dict:
    """Mean of b - a over held-out prompts and seeds (a, b: [S, N] final gold) with its 95%
    bootstrap interval over prompts (a prompt's seeds move together; the trained policies stay
    fixed), the per-seed differences, whether every seed has the same sign, and the 95%
    Student-t interval over the per-seed differences (``seed_ci_low``/``seed_ci_high``: it
    covers the spread between training seeds)."""
    d = with_seed_interval(a, b, torch.zeros(a.shape[1], dtype=torch.float64), mean_diff, draws)
    by_seed = d.get("by_seed", (b - a).mean(1).tolist())   # one seed: no interval
    return {**d, "by_seed": by_seed,
            "same_sign_every_seed": all(x > 0 for x in by_seed) or all(x < 0 for x in by_seed)}


def _start_point(out: Path, cfg: OveroptConfig, probe: HeldOutProbe, tokenizer,
                 seed: int) -> dict:
    """Held-out figures of the starting policy (iteration 0) under ``seed``'s sampling seed,
    computed once."""
    f = out / f"start-seed{seed}.json"
    if f.exists():
        return read_json(f, "start point")
    model = copy.deepcopy(cfg.rl.model)
    model.policy = cfg.policy
    policy, ref = load_policy(model)
    figures = probe(policy, ref, tokenizer)
    figures.pop("heldout_gold_per_prompt")
    write_text(f, json.dumps(figures))
    return figures


def _write_report(out: Path, cfg: OveroptConfig, results: dict, minutes: float) -> None:
    p = cfg.rl.ppo
    pairs = sum(1 for ln in (out / "prefs" / "train.jsonl").read_text().splitlines() if ln)
    held = sum(1 for ln in (out / "prefs" / "test.jsonl").read_text().splitlines() if ln)
    acc = [m.get("eval_accuracy") for m in
           read_json(out / "ensemble" / MANIFEST, "ensemble manifest")["members"]]
    lines = ["# Reward over-optimisation study", "",
             f"Gold reward `{cfg.prefs.reward.kind or get_spec(cfg.rl.task.name).reward}` on "
             f"`{cfg.rl.task.name}`; proxy: {cfg.reward.ensemble} reward models "
             f"(`{cfg.reward.backbone}`) trained on {pairs} gold-labelled pairs from "
             f"{cfg.prefs.train_pairs} prompts (ties dropped; label noise "
             f"{cfg.prefs.label_noise:g}); PPO from `{cfg.policy}` with LoRA, "
             f"{p.total_iterations} iterations of {p.batch_size}, lr {p.learning_rate:g}, "
             f"initial KL coefficient {p.init_kl_coef:g}, lambda {cfg.lam:g}; training seeds "
             f"{', '.join(map(str, cfg.seeds))}; held-out figures on {cfg.eval_prompts} prompts "
             f"every {cfg.eval_every} iterations (means over seeds). Final gold minus `mean`: "
             "per prompt and seed, 95% bootstrap interval over prompts with these trained "
             "policies fixed (it does not cover the spread between training seeds: the "
             "per-seed differences are in results.json, `same sign` says whether every "
             "seed agrees, and the tables below add a Student-t interval over the per-seed "
             f"differences, which does). Wall time of this invocation {minutes:.1f} min.", "",
             f"Proxy pairwise accuracy on the {held} held-out gold-labelled pairs, per member: "
             + ", ".join("-" if a is None else f"{a:.3f}" for a in acc) + ".", "",
             "| method | start gold | best gold (iteration) | final gold [95% CI] | final gold "
             "minus mean [95% CI] | same sign | final proxy | final KL (held-out) | training KL |",
             "|---|---|---|---|---|---|---|---|---|"]
    for m, r in results.items():
        d, (lo, hi) = r.get("final_gold_minus_mean"), r["final_gold_ci"]
        lines.append(f"| {m} | {r['start_gold']:+.3f} | {r['best_gold']:+.3f} "
                     f"({r['best_iteration']}) | {r['final_gold']:+.3f} [{lo:+.3f}, {hi:+.3f}] | "
                     f"{_interval(d)} | {_sign(d)} | {r['final_proxy']:+.3f} | "
                     f"{r['final_kl']:.2f} | {r['train_kl']:.2f} |")
    for m in ("adaptive", KL_MATCHED):
        vs = results.get(m, {}).get("final_gold_versus")
        if not vs:
            continue
        lines += ["", f"`{m}` minus each method, final gold (paired per prompt and seed; "
                  "per-seed differences in training-seed order):", "",
                  "| minus | difference [95% CI over prompts] | per seed | same sign | "
                  "95% CI over seeds (t) |", "|---|---|---|---|---|"]
        lines += [f"| {o} | {_interval(d)} | {', '.join(f'{x:+.3f}' for x in d['by_seed'])} | "
                  f"{_sign(d)} | {_seed_interval(d)} |" for o, d in vs.items()]
    lines += ["", "Mean per-sample KL coefficient applied (`kl_coef_mean`), first and last "
              "iteration, per seed:", "", "| method | " + " | ".join(
                  f"seed {s}" for s in cfg.seeds) + " |", "|---" * (len(cfg.seeds) + 1) + "|"]
    lines += [f"| {m} | " + " | ".join(_applied(a) for a in r["kl_coef_applied_by_seed"]) + " |"
              for m, r in results.items()]
    if KL_MATCHED in results:
        r = results[KL_MATCHED]
        lines += ["", f"`{KL_MATCHED}`: adaptive with initial KL coefficients "
                  f"{', '.join(f'{c:.4g}' for c in r['kl_coef_by_seed'])} (per seed), chosen "
                  f"from training KL only, against mean's "
                  f"{', '.join(f'{k:.2f}' for k in r['target_train_kl_by_seed'])}; within "
                  f"{cfg.kl_tolerance:.0%}: {r['matched_by_seed']}. Every run tried "
                  "(initial KL coefficient: training KL, its gap to mean's; the first is "
                  "`adaptive` itself):", ""]
        lines += [f"- seed {s}: " + ", ".join(f"{t['kl_coef']:.3g}: {t['train_kl']:.2f} "
                                              f"({t['train_kl'] / target - 1:+.0%})"
                                              for t in tries)
                  for s, tries, target in zip(r["seeds"], r["tries_by_seed"],
                                              r["target_train_kl_by_seed"])]
        gaps = [a / b - 1 for a, b in zip(r["final_kl_by_seed"],
                                          results["mean"]["final_kl_by_seed"])]
        lines += ["", f"Held-out final KL of `{KL_MATCHED}` against `mean`'s, per seed: "
                  + ", ".join(f"{g:+.0%}" for g in gaps) + "."]
    lines += ["", "![Gold reward, proxy reward and KL per iteration](overopt_curves.png)", "",
              "![Gold reward against sqrt(KL), the over-optimisation frontier](gold_vs_kl.png)",
              ""]
    write_text(out / "report.md", "\n".join(lines))


def _applied(first_last: list) -> str:
    return " to ".join("-" if c is None else f"{c:.4f}" for c in first_last)


def _interval(d: dict | None) -> str:
    return f"{d['diff']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]" if d else "-"


def _seed_interval(d: dict) -> str:
    if d.get("seed_ci_low") is None:
        return "-"
    return f"[{d['seed_ci_low']:+.3f}, {d['seed_ci_high']:+.3f}]"


def _sign(d: dict | None) -> str:
    return {True: "yes", False: "no"}[d["same_sign_every_seed"]] if d else "-"


__all__ = ["HeldOutProbe", "OveroptConfig", "run_overopt"]
