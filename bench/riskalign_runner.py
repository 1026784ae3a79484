"""One riskalign PPO run timed per iteration: ``python riskalign_runner.py KIND '<spec json>'``.

KIND: ``rlhf`` (the shared reward model), ``ra-rlhf`` (the same, with the soft-risk schedule
already at alpha = 0.4, so ceil(0.4 B) trajectories train) or ``ensemble`` (a 5-member ensemble of
reward models with the ``adaptive`` method); a ``-bf16`` suffix runs the same in mixed precision
(``precision=bf16``) and measures the matmul rate in bf16. The ensemble run gives every second
timed iteration to the single shared reward model instead (``paired_single_seconds``), in the
same process, so that the ensemble's overhead is measured against the same machine state.
Settings mirror the TRL run: full fine-tuning, float32 (unless -bf16), fixed-length responses,
fixed KL coefficient. Prints one ``BENCH-RESULT {...}`` line with per-iteration seconds, the
trainer's phase times, peak resident memory and the machine's matmul rate and memory bandwidth,
measured before and after the iterations (the faster kept).
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spec import (PHASES, Spec, emit, machine_rates, machine_rates_apart,  # noqa: E402
                  peak_rss_mb, read_prompts)


def build(kind: str, spec: Spec, precision: str):
    from riskalign.config import RunConfig
    from riskalign.models import load_policy, load_tokenizer
    from riskalign.ppo.rollout import GenerationSettings
    from riskalign.ppo.trainer import PPOTrainer, seed_everything
    from riskalign.rewards.classifier import ClassifierReward
    from riskalign.rewards.ensemble import EnsembleReward
    from riskalign.rewards.shaping import EnsembleShaper, PlainShaper
    from riskalign.risk import SoftRiskSelector
    from riskalign.runtime import configure

    configure(spec.threads, precision)  # as every riskalign command does
    cfg = RunConfig(seed=spec.seed, threads=spec.threads, output_dir=spec.extra["output_dir"],
                    precision=precision)
    cfg.model.policy = spec.model
    p = cfg.ppo
    p.batch_size, p.mini_batch_size, p.forward_batch_size = (spec.batch_size, spec.mini_batch_size,
                                                             spec.batch_size)
    p.ppo_epochs, p.learning_rate, p.init_kl_coef = spec.ppo_epochs, spec.learning_rate, spec.kl_coef
    p.adap_kl_ctrl, p.temperature = False, spec.temperature
    n_iter = spec.warmup + spec.iterations
    p.total_iterations = n_iter
    seed_everything(spec.seed)
    tok = load_tokenizer(spec.model)
    policy, ref = load_policy(cfg.model)
    if kind == "ensemble":
        shaper = EnsembleShaper(EnsembleReward(spec.extra["ensemble"], "full", spec.batch_size),
                                "adaptive", kl_coef=spec.kl_coef)
    else:
        shaper = PlainShaper(ClassifierReward(spec.reward, batch_size=spec.batch_size))
    single = (PlainShaper(ClassifierReward(spec.reward, batch_size=spec.batch_size))
              if kind == "ensemble" else None)  # for the paired iterations
    select = (SoftRiskSelector(0.4, 0, 0.01, "kl_return", n_iter) if kind == "ra-rlhf" else None)
    prompts = [r["text"] for r in read_prompts(spec.prompts)]
    gen = GenerationSettings(spec.response_length, spec.response_length, spec.temperature)
    return PPOTrainer(cfg, policy, ref, tok, shaper, prompts, gen, select), single


def main() -> None:
    kind, spec = sys.argv[1], Spec.load(sys.argv[2])
    kind, bf16 = kind.removesuffix("-bf16"), kind.endswith("-bf16")
    dtype = "bfloat16" if bf16 else "float32"
    rates = [machine_rates_apart(spec.threads, dtype)]  # its buffers must not raise this peak
    trainer, single = build(kind, spec, "bf16" if bf16 else "fp32")
    own = trainer.shaper
    paired = kind == "ensemble"
    seconds, phases, kept, single_seconds = [], [], [], []
    for i in range(spec.warmup + spec.iterations):
        alternate = paired and i >= spec.warmup and (i - spec.warmup) % 2 == 1
        trainer.shaper = single if alternate else own
        t = time.perf_counter()
        stats = trainer.step()
        (single_seconds if alternate else seconds).append(time.perf_counter() - t)
        if not alternate:
            phases.append({k: stats[f"time_{k}"] for k in PHASES})
            kept.append(stats["kept"])
    peak = peak_rss_mb()
    rates.append(machine_rates(spec.threads, dtype))
    w = spec.warmup
    emit({"matmul_gflops": max(r[0] for r in rates), "memory_gbps": max(r[1] for r in rates),
          "seconds": seconds[w:], "warmup_seconds": seconds[:w], "phases": phases[w:],
          "trained_sequences": kept[-1], "peak_rss_mb": peak,
          **({"paired_single_seconds": single_seconds} if paired else {})})


if __name__ == "__main__":
    main()
