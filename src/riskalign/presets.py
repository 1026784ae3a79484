"""Presets, in one place: settings sized for a 2-core CPU and the offline drug-review task, as
the demo, the studies and the examples use them. Each returns a fresh config to adjust."""

from __future__ import annotations

from .config import LoraConfig, ModelConfig, RunConfig, TaskConfig
from .sft import SFTConfig

TASK = "drugreview-sentiment"


def cpu_task() -> TaskConfig:
    """Short prompts and fixed-length completions: 16 prompt tokens, 24 new tokens."""
    return TaskConfig(name=TASK, prompt_tokens=16, new_tokens=24, min_new_tokens=24)


def cpu_run() -> RunConfig:
    """The CPU PPO preset (demo, studies, examples): LoRA on the 135M policy, batch 16, 2 PPO
    epochs, learning rate 1e-3, initial KL coefficient 0.05, 12 iterations."""
    cfg = RunConfig(threads=2)
    cfg.model.lora.enabled = True
    cfg.task = cpu_task()
    p = cfg.ppo
    p.learning_rate, p.batch_size, p.mini_batch_size, p.forward_batch_size = 1e-3, 16, 8, 16
    p.ppo_epochs, p.total_iterations, p.init_kl_coef = 2, 12, 0.05
    cfg.log.eval_prompts, cfg.log.checkpoint_every = 0, 2
    return cfg


def cpu_sft() -> SFTConfig:
    """SFT on the task's positive reviews with LoRA (merged at the end), 64 tokens per text."""
    return SFTConfig(learning_rate=5e-4, max_tokens=64, batch_size=8, epochs=1,
                     model=ModelConfig(lora=LoraConfig(enabled=True)), task=TaskConfig(name=TASK))


def chat_run() -> RunConfig:
    """RLAIF's PPO on the 135M chat model: as ``cpu_run`` (LoRA, 12 iterations of 16 prompts)
    with sampling temperature 0.7 and the task section left at its defaults (RLAIF brings its
    own prompts)."""
    cfg = RunConfig(threads=2)
    cfg.model.lora.enabled = True
    p = cfg.ppo
    p.learning_rate, p.batch_size, p.mini_batch_size, p.forward_batch_size = 1e-3, 16, 8, 16
    p.ppo_epochs, p.total_iterations, p.init_kl_coef, p.temperature = 2, 12, 0.05, 0.7
    cfg.log.eval_prompts, cfg.log.checkpoint_every = 0, 2
    return cfg


def chat_sft() -> SFTConfig:
    """Chat SFT for RLAIF's constitutional revisions: 160 tokens, 2 epochs, LoRA."""
    return SFTConfig(learning_rate=5e-4, max_tokens=160, batch_size=8, epochs=2,
                     model=ModelConfig(lora=LoraConfig(enabled=True)))


__all__ = ["TASK", "chat_run", "chat_sft", "cpu_run", "cpu_sft", "cpu_task"]
