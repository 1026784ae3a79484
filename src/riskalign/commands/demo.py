"""``riskalign demo``: the whole RA-RLHF story on the offline drug-review task, on a CPU.

Stages (each one skipped when its output exists, so an interrupted demo resumes):
1. prepare the default 135M policy;
2. SFT it on positive training reviews (LoRA, merged) -> ``sft/``;
3. per seed: RLHF (PPO) and RA-RLHF (PPO + soft-risk tail selection) from the SFT model, with the
   same seed, prompts and budget -> ``rlhf/seed-K/``, ``ra-rlhf/seed-K/``;
4. evaluate ``base``, ``sft``, ``rlhf`` and ``ra-rlhf`` on the same held-out prompts ->
   ``metrics.json``, ``report.md`` and the pictures in the output folder.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from ..assets import DEFAULT_POLICY, prepare_default_policy
from .. import presets
from ..atomic import write_text
from ..config import RiskConfig, RunConfig, _check, check_precision, opt, precision_opt
from ..eval.plots import plot_training_curves
from .eval import EvalConfig, run_eval
from ..sft import SFTConfig, run_sft
from ..ppo.run import run_ppo

TASK = presets.TASK
cpu_task, cpu_rl_defaults, _sft_defaults = presets.cpu_task, presets.cpu_run, presets.cpu_sft


def _eval_defaults() -> EvalConfig:
    task = cpu_task()
    task.max_eval = 128
    return EvalConfig(task=task)


@dataclass
class DemoConfig:
    output_dir: str = opt("runs/demo", "Folder for every stage's output and the final report.")
    base: str = opt(DEFAULT_POLICY, "Starting model (the `base` of the report; SFT starts here).")
    seeds: int = opt(1, "Number of seeds (0 .. seeds-1) for RLHF, RA-RLHF and evaluation.")
    threads: int = opt(2, "torch CPU threads for every stage.")
    precision: str = precision_opt()
    sft: SFTConfig = field(default_factory=_sft_defaults,
                           metadata={"help": "SFT stage (model.policy and output_dir are set by "
                                             "the demo)."})
    rl: RunConfig = field(default_factory=cpu_rl_defaults,
                          metadata={"help": "PPO settings shared by RLHF and RA-RLHF (policy, "
                                            "seed and output_dir are set by the demo)."})
    risk: RiskConfig = field(default_factory=lambda: RiskConfig(alpha=0.4, warm_start=2, rho=0.75),
                             metadata={"help": "RA-RLHF soft-risk schedule (the short demo "
                                               "budget needs a short warm start)."})
    eval: EvalConfig = field(default_factory=_eval_defaults,
                             metadata={"help": "Evaluation (models, seeds, output_dir set by the "
                                               "demo)."})

    def validate(self) -> "DemoConfig":
        _check(self.seeds >= 1, "seeds", ">= 1", self.seeds)
        _check(self.threads >= 1, "threads", ">= 1", self.threads)
        check_precision(self.precision)
        _check(self.risk.alpha < 1, "risk.alpha", "< 1 (alpha = 1 is plain RLHF)", self.risk.alpha)
        self.sft.validate()
        self.rl.validate()
        self.risk.validate("risk")
        self.eval.validate()
        return self


def _stage(console: Console, n: int, total: int, text: str) -> None:
    console.rule(f"[bold]stage {n}/{total}: {text}")


def _train(cfg: RunConfig, title: str) -> Path:
    out = Path(cfg.output_dir)
    if (out / "summary.json").exists() and (out / "final" / "config.json").exists():
        return out / "final"
    run_ppo(cfg, resume="auto", title=title)
    return out / "final"


def run_demo(cfg: DemoConfig) -> dict:
    console = Console()
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(cfg.seeds))
    total = 3 + 2 * len(seeds)
    times: dict[str, float] = {}
    t_all = time.perf_counter()

    _stage(console, 1, total, f"prepare the base model ({cfg.base})")
    t = time.perf_counter()
    if cfg.base == DEFAULT_POLICY:
        prepare_default_policy()
    times["assets"] = time.perf_counter() - t

    _stage(console, 2, total, "SFT on positive reviews")
    t = time.perf_counter()
    sft_cfg = copy.deepcopy(cfg.sft)
    sft_cfg.output_dir = str(out / "sft")
    sft_cfg.model.policy, sft_cfg.precision = cfg.base, cfg.precision
    if not (out / "sft" / "config.json").exists():
        run_sft(sft_cfg, threads=cfg.threads)
    times["sft"] = time.perf_counter() - t

    finals: dict[str, list[str]] = {"rlhf": [], "ra-rlhf": []}
    stage = 2
    for seed in seeds:
        for name in ("rlhf", "ra-rlhf"):
            stage += 1
            _stage(console, stage, total, f"{name.upper()} seed {seed}")
            rl = copy.deepcopy(cfg.rl)
            rl.seed, rl.threads, rl.precision = seed, cfg.threads, cfg.precision
            rl.model.policy = sft_cfg.output_dir
            rl.output_dir = str(out / name / f"seed-{seed}")
            rl.risk = copy.deepcopy(cfg.risk) if name == "ra-rlhf" else RiskConfig(alpha=1.0)
            t = time.perf_counter()
            finals[name].append(str(_train(rl, f"{name} seed {seed}")))
            times[f"{name}-seed{seed}"] = time.perf_counter() - t

    stage += 1
    _stage(console, stage, total, "evaluate base, sft, rlhf and ra-rlhf")
    t = time.perf_counter()
    ev = copy.deepcopy(cfg.eval)
    ev.output_dir, ev.seeds, ev.threads = str(out), seeds, cfg.threads
    ev.precision, ev.baseline = cfg.precision, "rlhf"  # the paired differences: against RLHF
    ev.models = [f"base={cfg.base}", f"sft={sft_cfg.output_dir}",
                 f"rlhf={','.join(finals['rlhf'])}", f"ra-rlhf={','.join(finals['ra-rlhf'])}"]
    result = run_eval(ev.validate())
    times["eval"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t_all

    runs = {name: [Path(p).parent / "metrics.jsonl" for p in ps] for name, ps in finals.items()}
    plot_training_curves(runs, out / "training_curves.png")
    _append_training_section(out, cfg, times)
    write_text(out / "demo.json", json.dumps({"seconds": times, "seeds": seeds}, indent=2))
    console.print(f"demo finished in {times['total'] / 60:.1f} min; report: {out / 'report.md'}")
    return result


def _append_training_section(out: Path, cfg: DemoConfig, times: dict) -> None:
    p, r = cfg.rl.ppo, cfg.risk
    lines = [
        "", "## How the models were trained", "",
        f"`sft`: LoRA (r {cfg.sft.model.lora.r}, merged) on positive training reviews, "
        f"{cfg.sft.epochs} epoch, lr {cfg.sft.learning_rate:g}, {cfg.sft.max_tokens} tokens.",
        f"`rlhf` and `ra-rlhf`: PPO from `sft` with LoRA r {cfg.rl.model.lora.r}, "
        f"{p.total_iterations} iterations of {p.batch_size} prompts, {p.ppo_epochs} PPO epochs, "
        f"lr {p.learning_rate:g}, initial KL coefficient {p.init_kl_coef:g}; same seed and prompts. "
        f"`ra-rlhf` adds soft-risk tail selection: alpha {r.alpha:g}, warm start {r.warm_start}, "
        f"rho {r.rho:g}, ranked by {r.rank_by}.", "",
        "![Training score, whole batch and kept tail](training_curves.png)", "",
        "Wall time per stage (this run; stages skipped on resume count only their check):", "",
        "| stage | minutes |", "|---|---|",
        *[f"| {k} | {v / 60:.1f} |" for k, v in times.items()],
    ]
    report = out / "report.md"
    write_text(report, report.read_text() + "\n".join(lines) + "\n")


__all__ = ["DemoConfig", "run_demo"]
