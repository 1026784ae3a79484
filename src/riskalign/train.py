"""``riskalign ppo``: wire config, task, reward, models and trainer; score before and after."""

from __future__ import annotations

import json
import resource
import statistics
import time
from pathlib import Path

from .config import ConfigError, RunConfig, to_dict
from .eval.sampling import sample_and_score
from .logger import RunLogger
from .models import load_policy, load_tokenizer
from .ppo.rollout import GenerationSettings
from .ppo.trainer import PPOTrainer, seed_everything, total_iterations
from .risk import SoftRiskSelector
from .rewards import PromptScoreCache, build_shaper
from .rewards.shaping import PlainShaper, as_shaper
from .tasks import get_spec, load_task
from .runtime import configure


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def risk_selector(cfg: RunConfig, n_prompts: int, reward=None) -> SoftRiskSelector | None:
    """The RA-RLHF tail selector the config asks for (None when risk.alpha = 1); ``reward``
    scores the prompts alone when risk.rank_by = 'gain'."""
    if cfg.risk.alpha >= 1:
        return None
    r = cfg.risk
    starts = None
    if r.rank_by == "gain":
        if reward is None or not isinstance(as_shaper(reward), PlainShaper):
            raise ConfigError("risk.rank_by='gain' needs a plain reward source (the prompt alone "
                              "is scored by it, as the completions are); with an ensemble or "
                              "RLAIF rank by kl_return or score")
        starts = PromptScoreCache(as_shaper(reward).source)
    return SoftRiskSelector(r.alpha, r.warm_start, r.rho, r.rank_by,
                            total_iterations(cfg, n_prompts), starts)


def build_trainer(cfg: RunConfig, select=None) -> tuple[PPOTrainer, object]:
    configure(cfg.threads, cfg.precision)
    seed_everything(cfg.seed)
    tokenizer = load_tokenizer(cfg.model.policy, cfg.model.trust_remote_code)
    task = load_task(cfg.task, tokenizer, cfg.seed)
    reward = build_shaper(cfg.reward, get_spec(cfg.task.name).reward, cfg.ppo.init_kl_coef)
    policy, ref = load_policy(cfg.model)
    gen = GenerationSettings(task.new_tokens, task.min_new_tokens, cfg.ppo.temperature,
                             cfg.ppo.top_k, cfg.ppo.top_p)
    select = select or risk_selector(cfg, len(task.train), reward)
    trainer = PPOTrainer(cfg, policy, ref, tokenizer, reward, task.train.texts, gen, select)
    return trainer, task


def _held_out_score(trainer: PPOTrainer, task, n: int, seed: int) -> float:
    prompts = task.test.texts[:n]
    _, scores = sample_and_score(trainer.policy, trainer.tokenizer, trainer.reward, prompts,
                                 trainer.gen, trainer.cfg.ppo.forward_batch_size, seed,
                                 trainer.generator)
    return scores.mean().item()


def run_ppo(cfg: RunConfig, resume: bool = False, select=None, title: str = "ppo",
            on_step=None, build=build_trainer) -> dict:
    """Train; write metrics.jsonl, checkpoints, final/ and summary.json under cfg.output_dir.

    ``on_step(trainer, stats)`` runs after each iteration, before the stats are logged (it may
    add keys, e.g. held-out figures). ``build(cfg, select) -> (trainer, task)`` makes the trainer
    (the default reads the task and reward from the config; RLAIF brings its own)."""
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    trainer, task = build(cfg, select)
    resumed = trainer.resume() if resume else False
    if not trainer.dist.is_main:  # other processes train their share; the main one writes
        trainer.train()
        return {}
    (out / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))
    n_eval = min(cfg.log.eval_prompts, len(task.test))
    before_file = out / "eval_before.json"
    before = None
    if n_eval:
        if resumed and before_file.exists():
            before = json.loads(before_file.read_text())["score_mean"]
        else:
            before = _held_out_score(trainer, task, n_eval, cfg.seed + 12345)
            before_file.write_text(json.dumps({"score_mean": before, "prompts": n_eval}))
        print(f"held-out mean score before: {before:+.4f} ({n_eval} prompts)")
    t0 = time.perf_counter()
    start = trainer.iteration
    with RunLogger(out, trainer.total, start, cfg.log.tensorboard, cfg.log.every,
                   title) as logger:
        def log(stats: dict) -> None:
            if on_step:
                on_step(trainer, stats)
            logger.log(stats)

        history = trainer.train(on_step=log)
    elapsed = time.perf_counter() - t0
    trainer.policy.save(out / "final", merge_lora=True)
    trainer.tokenizer.save_pretrained(str(out / "final"))
    summary = {"iterations": trainer.iteration, "score_before": before,
               "seconds_per_iteration": elapsed / max(1, trainer.iteration - start),
               "peak_rss_mb": peak_rss_mb()}
    if n_eval:
        summary["score_after"] = _held_out_score(trainer, task, n_eval, cfg.seed + 12345)
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
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
