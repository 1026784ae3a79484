"""``riskalign study ra-rlhf``: RLHF against RA-RLHF at a budget where the tail can move.

Both methods start from the same SFT model and differ only in the soft-risk schedule (the
paper's proportions by default: warm start ~15% of M, rho 0.95, alpha 0.4; same optimizer steps
per epoch as RLHF). Each training seed s trains both methods, then each final model is sampled
on the evaluation split with sampling seed s; the SFT model is sampled with the same seeds. The
summary is ``riskalign eval``'s, with RLHF as the paired baseline: differences per prompt and
seed with 95% bootstrap intervals over prompts.

``variants`` adds named RA-RLHF runs that differ by a few settings (e.g. ``ppo.minibatches=kept``
or ``risk.rank_by=gain``), each paired against the same RLHF runs. Run them with
``eval.split=validation`` to choose settings, then add the chosen one to the study on the test
split, which evaluates it once. Variants may be added to a study folder later; a variant's
settings may not change.

Resuming: a run's small results (its per-iteration log and its evaluation) are written next to
the report as soon as the run ends, and a run with results is never redone; a run cut short
resumes from its checkpoint under ``work/``. Only ``work/`` (models and checkpoints) is large;
everything else in the output folder is the report, ready for ``docs/``.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..atomic import write_text
from ..config import (ConfigError, RiskConfig, RunConfig, _build, _check, check_precision,
                     check_same_settings, merge_overrides, opt, precision_opt, to_dict)
from ..presets import cpu_run as cpu_rl_defaults, cpu_sft as _sft_defaults, cpu_task
from ..eval.plots import plot_tail_during_training
from .eval import EvalConfig, _Models, _raw_result, load_scorer, prepare, summarise
from ..rewards import PromptScoreCache
from ..sft import SFTConfig, run_sft
from ..runtime import configure
from ..ppo.run import run_ppo
from ..files import read_json, read_jsonl

METHODS = ("rlhf", "ra-rlhf")
# what a variant may not override: the run's identity and its prompt data (a variant may change
# anything else, batch size and reward included, and the report lists its overrides)
_FIXED = ("seed", "output_dir", "threads", "precision", "task", "log", "model.policy")
# study settings added after a study's first runs, as those runs behaved (the checkpoint
# counterpart is ``ppo.trainer._LEGACY``)
_LEGACY = {"rl": {"ppo": {"whiten_over": "kept"}}}


def _rl_defaults() -> RunConfig:
    cfg = cpu_rl_defaults()
    cfg.ppo.batch_size, cfg.ppo.forward_batch_size, cfg.ppo.total_iterations = 32, 32, 64
    cfg.log.checkpoint_every = 4
    cfg.task.validation = 128
    return cfg


def _eval_defaults() -> EvalConfig:
    task = cpu_task()
    task.validation, task.max_eval = 128, 256
    return EvalConfig(task=task, reference_texts=32)


@dataclass
class StudyConfig:
    output_dir: str = opt("runs/ra-rlhf-study", "Report folder (ready for docs/); models and "
                                                "checkpoints go to its work/ subfolder.")
    seeds: list[int] = opt([0, 1, 2], "Training seeds; seed s also samples the evaluation.")
    threads: int = opt(2, "torch CPU threads.")
    precision: str = precision_opt()
    tail_percent: float = opt(20.0, "Logged per iteration: mean score of the batch's worst "
                                    "this-percent of trajectories by prompt score.")
    sft: SFTConfig = field(default_factory=_sft_defaults,
                           metadata={"help": "The shared SFT stage (output_dir is set here)."})
    rl: RunConfig = field(default_factory=_rl_defaults,
                          metadata={"help": "PPO settings of both methods (policy, seed, "
                                            "output_dir and risk are set here)."})
    risk: RiskConfig = field(default_factory=lambda: RiskConfig(alpha=0.4, warm_start=10,
                                                                rho=0.95),
                             metadata={"help": "RA-RLHF's soft-risk schedule (the paper's "
                                               "proportions: warm start ~15% of M)."})
    eval: EvalConfig = field(default_factory=_eval_defaults,
                             metadata={"help": "Evaluation (split=test for the final run, "
                                               "validation to choose settings)."})
    variants: dict = opt({}, "More RA-RLHF runs by name, each a list of key=value overrides of "
                             "the RA-RLHF run's settings, e.g. {kept: [ppo.minibatches=kept]} "
                             "(on the command line: variants.kept=[ppo.minibatches=kept]); each "
                             "is trained on every seed and paired against RLHF.")

    def validate(self) -> "StudyConfig":
        _check(len(self.seeds) >= 1 and len(set(self.seeds)) == len(self.seeds), "seeds",
               "a non-empty list of distinct seeds", self.seeds)
        _check(self.threads >= 1, "threads", ">= 1", self.threads)
        _check(0 < self.tail_percent <= 100, "tail_percent", "in (0, 100]", self.tail_percent)
        check_precision(self.precision)
        _check(self.risk.alpha < 1, "risk.alpha", "< 1 (alpha = 1 is plain RLHF)",
               self.risk.alpha)
        for k in ("name", "data_path", "validation"):  # what decides the validation prompts
            _check(getattr(self.eval.task, k) == getattr(self.rl.task, k), f"eval.task.{k}",
                   f"equal to rl.task.{k} ({getattr(self.rl.task, k)!r}), so that the "
                   "validation prompts are the ones PPO never sees", getattr(self.eval.task, k))
        _check(20.0 in self.eval.tail_percents, "eval.tail_percents",
               "a list holding 20 (the study's verdict is on the worst 20% of prompts)",
               self.eval.tail_percents)
        self.sft.validate()
        self.rl.validate()
        self.risk.validate("risk")
        self.eval.validate()
        _check(isinstance(self.variants, dict), "variants", "a mapping of name to overrides",
               self.variants)
        for name in self.variants:
            _check(isinstance(name, str) and name.replace("-", "").isalnum()
                   and name not in (*METHODS, "sft", "paired"), "variants",
                   "named with letters, digits and '-' (not rlhf, ra-rlhf, sft or paired)", name)
            run_config(self, name, self.seeds[0])  # every variant builds and validates
        return self


def methods(cfg: StudyConfig) -> list[str]:
    """The runs of each seed: RLHF, RA-RLHF, then the variants in the order given."""
    return [*METHODS, *cfg.variants]


def run_config(cfg: StudyConfig, method: str, seed: int, sft_dir: Path | None = None,
               work: Path | None = None) -> RunConfig:
    """The PPO settings of one run: ``rl``, with ``risk`` for RA-RLHF and its variants (alpha 1,
    plain RLHF, for 'rlhf') and a variant's overrides on top."""
    rl = copy.deepcopy(cfg.rl)
    rl.risk = RiskConfig(alpha=1.0) if method == "rlhf" else copy.deepcopy(cfg.risk)
    if method not in METHODS:
        where = f"variants.{method}"
        overrides = cfg.variants[method]
        _check(isinstance(overrides, list) and overrides
               and all(isinstance(o, str) for o in overrides), where,
               "a non-empty list of key=value overrides", overrides)
        settings = to_dict(rl)
        for o in overrides:
            key = o.split("=", 1)[0].strip()
            _check(not any(key == f or key.startswith(f + ".") for f in _FIXED), where,
                   f"free of {', '.join(_FIXED)} (the study sets them)", o)
            node, known = settings, True
            for part in key.split("."):
                known = known and isinstance(node, dict) and part in node
                node = node[part] if known else None
            _check(known and not isinstance(node, dict), where, "overrides of single settings "
                   "(e.g. risk.rank_by=gain), not of a whole section or an unknown key", o)
        try:
            rl = _build(RunConfig, merge_overrides(to_dict(rl), overrides)).validate()
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
        _check(rl.risk.alpha < 1, f"{where}: risk.alpha", "< 1 (a variant is RA-RLHF)",
               rl.risk.alpha)
    rl.seed, rl.threads, rl.precision = seed, cfg.threads, cfg.precision
    if sft_dir is not None:
        rl.model.policy, rl.output_dir = str(sft_dir), str(work / f"{method}-seed{seed}")
    return rl


class BatchTail:
    """``on_step`` hook: the mean training score of the batch's worst q% of trajectories by
    prompt score (prompt scores cached per prompt), logged as ``tail_score``."""

    def __init__(self, percent: float):
        self.fraction, self.starts = percent / 100, None

    def __call__(self, trainer, stats: dict) -> None:
        from ..eval.metrics import tail_count
        from ..risk import select_tail

        ro = trainer.last_rollout
        self.starts = self.starts or PromptScoreCache(trainer.reward)
        scores = self.starts(ro.prompts)
        idx = select_tail(scores, tail_count(len(scores), self.fraction))
        stats["tail_score"] = ro.scores.cpu()[idx].mean().item()


def write_status(out: Path, cfg: StudyConfig, scores: torch.Tensor | None = None) -> None:
    """``status.md``: which runs have results (with their training time and mean evaluation
    reward) and which are still to do, so that a study spanning sessions shows where it is.
    With the prompt scores, each seed whose two runs are done also gets RA-RLHF minus RLHF on
    the mean and the worst 20% of prompts (one seed's difference, not a verdict)."""
    lines = ["# Study status", "", "| run | state | training minutes | mean reward on "
             f"{cfg.eval.split} |", "|---|---|---|---|"]
    for seed in cfg.seeds:
        for method in methods(cfg):
            name = f"{method}-seed{seed}"
            raw, log = out / "raw" / f"{name}.json", out / "logs" / f"{name}.jsonl"
            if raw.exists():
                r = read_json(raw, "run result")["rewards"]
                minutes = sum(row["time_total"] for row in read_jsonl(log, "run log")
                              ) / 60 if log.exists() else float("nan")
                lines.append(f"| {method} seed {seed} | done | {minutes:.1f} | "
                             f"{sum(r) / len(r):+.4f} |")
            else:
                lines.append(f"| {method} seed {seed} | to do | - | - |")
    if scores is not None:
        from ..eval.metrics import worst_prompts_reward
        from ..eval.paired import per_prompt

        rows = []
        for seed in cfg.seeds:
            base = out / "raw" / f"rlhf-seed{seed}.json"
            for method in methods(cfg)[1:]:
                file = out / "raw" / f"{method}-seed{seed}.json"
                if base.exists() and file.exists():
                    rl, ra = (per_prompt(read_json(f, "run result")["rewards"], len(scores)).float()
                              for f in (base, file))
                    rows.append(f"| {method} | {seed} | {(ra - rl).mean().item():+.4f} | "
                                f"{worst_prompts_reward(ra - rl, scores, 20):+.4f} |")
        if rows:
            lines += ["", "Minus RLHF per seed with both runs done (descriptive; the verdict "
                      "waits for every seed and the paired intervals):", "",
                      "| method | seed | mean reward | worst 20% of prompts |", "|---|---|---|---|",
                      *rows]
    lines += ["", "Rerun the same command (same settings) to continue; `report.md` and "
              "`metrics.json` appear when every run is done."]
    write_text(out / "status.md", "\n".join(lines) + "\n")


def _eta(done: int, total: int, seconds: float) -> str:
    if not done:
        return "ETA unknown"
    left = (total - done) * seconds / done
    return f"ETA {int(left // 3600)} h {int(left % 3600 // 60):02d} min"


def _settings(cfg: StudyConfig) -> dict:
    """What the results depend on (not where they go, nor the thread count), with precision
    resolved: runs of one study must share it, even across machines."""
    from ..precision import resolve

    s = {k: v for k, v in to_dict(cfg).items()
         if k not in ("output_dir", "threads", "variants")}  # variants may be added later
    s["precision"] = resolve(cfg.precision)
    return s


def _check_same_study(out: Path, cfg: StudyConfig) -> None:
    """Refuse to add runs to a study folder made with other settings, or to change the
    overrides of a variant it already holds (one-line error)."""
    saved = out / "study.json"
    if saved.exists():
        study = read_json(saved, "study record")
        check_same_settings(study.get("settings"), _settings(cfg), str(out), _LEGACY,
                            to_dict(StudyConfig()))
        for name, overrides in study.get("variants", {}).items():
            if name in cfg.variants and cfg.variants[name] != overrides:
                raise ConfigError(f"{out} holds variant '{name}' made with {overrides}; give it "
                                  f"the same overrides or another name")


def _record_sft(out: Path, sft_dir: Path) -> None:
    """Keep the SFT weights' SHA-256 in study.json. work/ is not kept with the report, so a study
    resumed elsewhere rebuilds SFT from the same seed; where the rebuilt weights differ (another
    CPU rounds differently) the mismatch is recorded and the report says so."""
    import hashlib

    digest = hashlib.sha256((sft_dir / "model.safetensors").read_bytes()).hexdigest()
    study = read_json(out / "study.json", "study record")
    if study.setdefault("sft_sha256", digest) != digest:
        rebuilt = study.setdefault("sft_rebuilt_sha256", [])
        if digest not in rebuilt:
            rebuilt.append(digest)
            print(f"study: warning: the rebuilt SFT model differs from the one earlier runs "
                  f"started from (SHA-256 {digest[:12]} against {study['sft_sha256'][:12]})")
    write_text(out / "study.json", json.dumps(study, indent=2))


def run_study(cfg: StudyConfig) -> dict:
    configure(cfg.threads, cfg.precision)  # before the prompt scores and any sampling
    out = Path(cfg.output_dir)
    _check_same_study(out, cfg)
    work, raw_dir, log_dir = out / "work", out / "raw", out / "logs"
    for d in (work, raw_dir, log_dir):
        d.mkdir(parents=True, exist_ok=True)
    if not (out / "study.json").exists():
        write_text(out / "study.json", json.dumps({"settings": _settings(cfg),
                                                   "invocation_seconds": []}, indent=2))
    study = read_json(out / "study.json", "study record")
    study["variants"] = {**study.get("variants", {}), **cfg.variants}
    write_text(out / "study.json", json.dumps(study, indent=2))
    t_start, clock = time.perf_counter(), {"iterations": 0}
    sft_dir = work / "sft"
    done = all((raw_dir / f"{m}-seed{s}.json").exists()
               for s in cfg.seeds for m in (*methods(cfg), "sft"))
    if done and not (sft_dir / "config.json").exists():
        # every result is in (work/ is not kept with a report): only the report is rebuilt,
        # and the SFT model's tokenizer is its base model's
        tokenizer_from = cfg.sft.model.policy
    else:
        if not (sft_dir / "config.json").exists():
            s = copy.deepcopy(cfg.sft)
            s.output_dir, s.precision = str(sft_dir), cfg.precision
            run_sft(s, threads=cfg.threads)
        _record_sft(out, sft_dir)
        tokenizer_from = str(sft_dir)
    ev = copy.deepcopy(cfg.eval)
    ev.output_dir, ev.seeds, ev.threads = str(out), cfg.seeds, cfg.threads
    ev.precision, ev.baseline = cfg.precision, "rlhf"
    setup = prepare(ev, tokenizer_from)
    models, scorer = _Models(), None
    write_status(out, cfg, setup.scores)
    runs = [(seed, m) for seed in cfg.seeds for m in methods(cfg)]
    todo = [(s, m) for s, m in runs if not (raw_dir / f"{m}-seed{s}.json").exists()]
    total_iters = len(todo) * cfg.rl.ppo.total_iterations

    def on_step(tail: BatchTail):
        def hook(trainer, stats):
            tail(trainer, stats)
            clock["iterations"] += 1
            if stats["iteration"] % 8 == 0:
                spent = time.perf_counter() - t_start
                print(f"study: {clock['iterations']}/{total_iters} iterations this session, "
                      f"{spent / 60:.0f} min, {_eta(clock['iterations'], total_iters, spent)}")
        return hook

    for k, (seed, method) in enumerate(runs):
        result = raw_dir / f"{method}-seed{seed}.json"
        if result.exists():
            continue
        print(f"study: run {k + 1}/{len(runs)}: {method} seed {seed}")
        rl = run_config(cfg, method, seed, sft_dir, work)
        run_dir = Path(rl.output_dir)
        if not (run_dir / "summary.json").exists():
            run_ppo(rl, resume="auto", title=f"{method} seed {seed}",
                    on_step=on_step(BatchTail(cfg.tail_percent)))
        shutil.copyfile(run_dir / "metrics.jsonl", log_dir / f"{method}-seed{seed}.jsonl")
        scorer = scorer or load_scorer(str(sft_dir))
        raw = _raw_result(ev, models, scorer, str(run_dir / "final"), seed, setup)
        write_text(result, json.dumps(raw))
        write_status(out, cfg, setup.scores)
        print(f"study: {method} seed {seed}: mean reward on {ev.split} "
              f"{sum(raw['rewards']) / len(raw['rewards']):+.4f}")
    for seed in cfg.seeds:  # the SFT model, sampled with the same seeds
        result = raw_dir / f"sft-seed{seed}.json"
        if not result.exists():
            scorer = scorer or load_scorer(str(sft_dir))
            write_text(result, json.dumps(_raw_result(ev, models, scorer, str(sft_dir), seed,
                                                      setup)))
    raws = {name: [read_json(raw_dir / f"{name}-seed{s}.json", "run result") for s in cfg.seeds]
            for name in (*methods(cfg), "sft")}
    metrics = summarise(ev, setup, raws, "sft")
    logs = {m: [read_jsonl(log_dir / f"{m}-seed{s}.jsonl", "run log") for s in cfg.seeds]
            for m in methods(cfg)}
    plot_tail_during_training(logs, out / "tail_during_training.png", cfg.tail_percent)
    _finish_report(out, cfg, time.perf_counter() - t_start, diagnostics(cfg, logs, raws))
    return metrics


DIAGNOSTICS = (("approx_kl", "approx. KL per update"), ("entropy", "entropy"),
               ("kl", "KL of the trained trajectories"),
               ("value_explained_var", "critic fit (trained)"),
               ("tail_score", "batch tail score"))


def diagnostics(cfg: StudyConfig, logs: dict, raws: dict) -> list[str]:
    """A markdown table per run: the logged figures averaged over the last quarter of the
    iterations (where RA-RLHF's tail is smallest), and ``ppl_reference`` of the final model."""
    last = cfg.rl.ppo.total_iterations * 3 // 4
    head = " | ".join(name for _, name in DIAGNOSTICS)
    lines = [f"## Training diagnostics (means over iterations {last + 1} to "
             f"{cfg.rl.ppo.total_iterations})", "",
             f"| run | {head} | reference ppl of the final model |",
             "|---" * (len(DIAGNOSTICS) + 2) + "|"]
    for method, runs in logs.items():
        for seed, log, raw in zip(cfg.seeds, runs, raws[method]):
            tail = [s for s in log if s["iteration"] > last]
            cells = [f"{sum(s[k] for s in tail) / len(tail):.3f}"
                     if tail and all(k in s for s in tail) else "-" for k, _ in DIAGNOSTICS]
            lines.append(f"| {method} seed {seed} | {' | '.join(cells)} | "
                         f"{raw['ppl_reference']:.1f} |")
    return lines + [""]


def _word(low: float, high: float) -> str:
    return ("ahead" if low > 0 else "behind" if high < 0 else "not distinguishable from RLHF")


def _finish_report(out: Path, cfg: StudyConfig, seconds: float, diag: list[str]) -> None:
    """Put the study's settings, the verdict, the training-tail picture and the training
    diagnostics on top of eval's report.md, and record this invocation's wall time in
    study.json."""
    metrics = read_json(out / "metrics.json", "study metrics")
    p, r = cfg.rl.ppo, cfg.risk
    verdicts = []
    for method in methods(cfg)[1:]:
        paired = metrics["paired"]["models"][method]
        label = "RA-RLHF" if method == "ra-rlhf" else f"Variant `{method}`"
        for key, name in (("tail_reward_q20", "worst 20% of prompts"),
                          ("mean_reward", "mean reward")):
            d = paired[key]
            line = (f"- {name}: {label} minus RLHF {d['diff']:+.3f}, 95% CI "
                    f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]: {label} is "
                    f"{_word(d['ci_low'], d['ci_high'])}.")
            if d.get("seed_ci_low") is not None:
                line += (f" Over the {len(cfg.seeds)} training seeds (Student-t, per seed "
                         f"{', '.join(f'{x:+.3f}' for x in d['by_seed'])}): "
                         f"[{d['seed_ci_low']:+.3f}, {d['seed_ci_high']:+.3f}], "
                         f"{_word(d['seed_ci_low'], d['seed_ci_high'])}.")
            verdicts.append(line)
    described = [f"`{name}` = RA-RLHF with {', '.join(f'`{o}`' for o in overrides)}"
                 for name, overrides in cfg.variants.items()]
    study = read_json(out / "study.json", "study record")
    rebuilt = ", ".join(d[:12] for d in study.get("sft_rebuilt_sha256", []))
    caveat = ([f"Caveat: this study was resumed on another machine and its SFT model, rebuilt "
               f"from the same seed, differs from the first one (SHA-256 "
               f"{study['sft_sha256'][:12]} then {rebuilt}); runs started from either.", ""]
              if rebuilt else [])
    head = [
        "# RA-RLHF against RLHF: paired study", "", *caveat,
        f"Both methods: PPO from the same SFT model, {p.total_iterations} iterations of "
        f"{p.batch_size} prompts ({p.total_iterations * p.batch_size} trajectories per run), "
        f"{p.ppo_epochs} PPO epochs, minibatches '{p.minibatches}', lr {p.learning_rate:g}, "
        f"initial KL coefficient {p.init_kl_coef:g} (adaptive: {p.adap_kl_ctrl}), LoRA r "
        f"{cfg.rl.model.lora.r}; training seeds {', '.join(map(str, cfg.seeds))}. RA-RLHF adds "
        f"the soft-risk schedule: alpha {r.alpha:g}, warm start {r.warm_start}, rho {r.rho:g}, "
        f"ranked by {r.rank_by}. "
        + (f"Variants: {'; '.join(described)}. " if described else "")
        + f"Evaluation on the {cfg.eval.split} split, sampling seed = training seed.", "",
        "## Verdict (95% bootstrap intervals over prompts, seeds pooled; then over training "
        "seeds)", "", *verdicts, "",
        f"![Mean training score of each batch's worst {cfg.tail_percent:g}% of trajectories by "
        "prompt score](tail_during_training.png)", "", *diag,
    ]
    report = out / "report.md"
    body = report.read_text().replace("# Evaluation report\n", "## Evaluation\n", 1)
    write_text(report, "\n".join(head) + "\n" + body)
    study["invocation_seconds"] = study.get("invocation_seconds", []) + [round(seconds, 1)]
    write_text(out / "study.json", json.dumps(study, indent=2))


__all__ = ["BatchTail", "StudyConfig", "run_study", "write_status"]
