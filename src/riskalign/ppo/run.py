"""``riskalign ppo``: wire config, task, reward, models and trainer; score before and after."""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import time
from pathlib import Path

from ..atomic import remove_partials, write_dir, write_text
from ..config import ConfigError, RunConfig, to_dict
from ..eval.sampling import sample_and_score
from ..files import read_json
from ..logger import RunLogger
from ..outputs import lock_folder
from ..models import load_policy, load_tokenizer
from .rollout import GenerationSettings
from .trainer import PPOTrainer, seed_everything
from ..risk import build_selector
from ..rewards import build_shaper
from ..tasks import get_spec, load_task
from ..runtime import configure


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_trainer(cfg: RunConfig, select=None) -> tuple[PPOTrainer, object]:
    configure(cfg.threads, cfg.precision)
    seed_everything(cfg.seed)
    tokenizer = load_tokenizer(cfg.model.policy, cfg.model.trust_remote_code)
    task = load_task(cfg.task, tokenizer, cfg.seed)
    reward = build_shaper(cfg.reward, get_spec(cfg.task.name).reward, cfg.ppo.init_kl_coef)
    policy, ref = load_policy(cfg.model)
    gen = GenerationSettings(task.new_tokens, task.min_new_tokens, cfg.ppo.temperature,
                             cfg.ppo.top_k, cfg.ppo.top_p)
    select = select or build_selector(cfg, len(task.train), reward)
    trainer = PPOTrainer(cfg, policy, ref, tokenizer, reward, task.train.texts, gen, select)
    return trainer, task


def _held_out_score(trainer: PPOTrainer, task, n: int, seed: int) -> float:
    prompts = task.test.texts[:n]
    _, scores = sample_and_score(trainer.policy, trainer.tokenizer, trainer.reward, prompts,
                                 trainer.gen, trainer.cfg.ppo.forward_batch_size, seed,
                                 trainer.generator)
    return scores.mean().item()


# what a run writes in its output folder (besides checkpoints/)
RUN_FILES = ("final", "metrics.jsonl", "summary.json", "eval_before.json", "config.json", "tb",
             "wandb", "wandb_id.txt")


def earlier_run(out: Path) -> bool:
    """Whether ``out`` holds (part of) an earlier run: a checkpoint, a log or a final model."""
    return (out / "checkpoints").is_dir() or any((out / f).exists() for f in RUN_FILES[:3])


def clear_run(out: Path) -> None:
    """Remove an earlier run's files from ``out`` (and nothing else the folder holds), with the
    temps of its interrupted writes."""
    remove_partials(out)
    for name in ("checkpoints", *RUN_FILES):
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def run_ppo(cfg: RunConfig, resume: bool | str = False, select=None, title: str = "ppo",
            on_step=None, build=build_trainer, overwrite: bool = False) -> dict:
    """Train; write metrics.jsonl, checkpoints, final/ and summary.json under cfg.output_dir.

    A run never mixes with an earlier one in the same folder. ``resume=True`` continues from the
    latest checkpoint (and says so in one line when there is none: the run starts fresh);
    ``resume=False`` refuses a folder holding an earlier run unless ``overwrite``, which first
    removes that run; ``resume='auto'`` (for pipelines) continues when a checkpoint exists and
    otherwise starts clean. ``on_step(trainer, stats)`` runs after each iteration, before the
    stats are logged (it may add keys, e.g. held-out figures). ``build(cfg, select) -> (trainer,
    task)`` makes the trainer (the default reads the task and reward from the config; RLAIF
    brings its own)."""
    out = Path(cfg.output_dir)
    if resume is True and overwrite:
        raise ConfigError("--resume and --overwrite contradict each other; give one")
    has_checkpoint = (out / "checkpoints" / "latest").is_file()
    kept = [out / "final", out / "summary.json", *(out / "checkpoints").glob("iter-*")]
    if resume is True and not has_checkpoint and any(p.exists() for p in kept):
        raise ConfigError(f"output_dir {out} holds a model or checkpoint but checkpoints/latest "
                          f"is missing, so there is nothing to resume; pass --overwrite to "
                          f"replace the run")
    if not resume and earlier_run(out) and not overwrite:
        raise ConfigError(f"output_dir {out} holds an earlier run; pass --resume to continue "
                          f"it or --overwrite to replace it")
    trainer, task = build(cfg, select)  # everything is checked before anything is removed
    main_process = int(os.environ.get("RANK", "0")) == 0  # under `accelerate launch`
    lock = lock_folder(out) if main_process else None  # held until the run ends
    try:
        if main_process:
            if not has_checkpoint or (overwrite and not resume):
                clear_run(out)
            remove_partials(out)
        if resume is True and not has_checkpoint:
            print(f"--resume: no checkpoint in {out / 'checkpoints'}; starting a fresh run")
        resumed = trainer.resume() if resume else False
        if not trainer.dist.is_main:  # other processes train their share; the main one writes
            trainer.train()
            return {}
        if resumed and trainer.iteration >= trainer.total and (out / "summary.json").is_file():
            print(f"{out}: the run is already finished ({trainer.total} iterations); "
                  f"nothing to do")
            return read_json(out / "summary.json", "run summary")
        write_text(out / "config.json", json.dumps(to_dict(trainer.cfg), indent=2))
        n_eval = min(cfg.log.eval_prompts, len(task.test))
        before_file = out / "eval_before.json"
        before = None
        if n_eval:
            if resumed and before_file.exists():
                before = read_json(before_file, "held-out score").get("score_mean")
            if before is None:
                before = _held_out_score(trainer, task, n_eval, cfg.seed + 12345)
                write_text(before_file, json.dumps({"score_mean": before, "prompts": n_eval}))
            print(f"held-out mean score before: {before:+.4f} ({n_eval} prompts)")
        t0 = time.perf_counter()
        start = trainer.iteration
        with RunLogger(out, trainer.total, start, cfg.log.tensorboard, cfg.log.every,
                       title, cfg.log.report_to, to_dict(trainer.cfg)) as logger:
            def log(stats: dict) -> None:
                if on_step:
                    on_step(trainer, stats)
                logger.log(stats)

            history = trainer.train(on_step=log)
        elapsed = time.perf_counter() - t0

        return _finish(trainer, task, out, n_eval, before, elapsed, start, history)
    finally:
        if lock is not None:
            lock.close()


def _finish(trainer: PPOTrainer, task, out: Path, n_eval: int, before, elapsed: float,
            start: int, history: list[dict]) -> dict:
    """Save final/ (atomically), score the held-out prompts after, write summary.json."""
    def write_final(tmp: Path) -> None:
        trainer.policy.save(tmp, merge_lora=True)
        trainer.tokenizer.save_pretrained(str(tmp))

    write_dir(out / "final", write_final)
    summary = {"iterations": trainer.iteration, "score_before": before,
               "seconds_per_iteration": elapsed / max(1, trainer.iteration - start),
               "peak_rss_mb": peak_rss_mb()}
    if n_eval:
        summary["score_after"] = _held_out_score(trainer, task, n_eval,
                                                 trainer.cfg.seed + 12345)
        print(f"held-out mean score after:  {summary['score_after']:+.4f} ({n_eval} prompts)")
    if history:
        summary["last_train_score"] = history[-1]["score_mean"]
        for k in ("time_total", "time_generate", "time_score", "time_forward", "time_update"):
            summary[f"median_{k}"] = statistics.median(h[k] for h in history)
        phases = " / ".join(f"{summary[f'median_time_{k}']:.2f}"
                            for k in ("generate", "score", "forward", "update"))
        print(f"median s per iteration {summary['median_time_total']:.1f} (generation / scoring "
              f"/ no-grad forwards / update: {phases})")
    print(f"{summary['seconds_per_iteration']:.1f} s/iteration (wall time of the loop, per-step "
          f"hooks included; before/after scoring excluded), "
          f"peak memory {summary['peak_rss_mb']:.0f} MB; model saved to {out / 'final'}")
    write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary
