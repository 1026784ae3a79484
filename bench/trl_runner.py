"""One TRL 1.12 PPO run (``trl.experimental.ppo.PPOTrainer``) timed per iteration.

Run with the bench environment's Python:
``python trl_runner.py '<spec json>' [--bf16] [--use-cpu] [--probe]``. Prints one
``BENCH-RESULT {...}`` line: seconds of each PPO iteration (one rollout + its updates) and the
process's peak resident memory. ``--bf16`` sets ``bf16=True`` and ``--use-cpu`` TRL's
``use_cpu=True`` (without it, bf16 on a machine with no GPU is refused). With ``--probe`` it
only builds the trainer and reports TRL's own error message (``refused``), or null where it
accepts.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spec import Spec, emit, peak_rss_mb, read_prompts  # noqa: E402


def main() -> None:
    spec = Spec.load(sys.argv[1])
    flags = set(sys.argv[2:])
    bf16, use_cpu, probe = "--bf16" in flags, "--use-cpu" in flags, "--probe" in flags
    import torch
    from datasets import Dataset
    from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification,
                              AutoTokenizer, TrainerCallback)
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    torch.set_num_threads(spec.threads)
    torch.manual_seed(spec.seed)
    tok = AutoTokenizer.from_pretrained(spec.model, padding_side="left")
    policy = AutoModelForCausalLM.from_pretrained(spec.model, dtype=torch.float32)
    ref = AutoModelForCausalLM.from_pretrained(spec.model, dtype=torch.float32)
    value = AutoModelForSequenceClassification.from_pretrained(spec.model, num_labels=1,
                                                               dtype=torch.float32)
    reward = AutoModelForSequenceClassification.from_pretrained(spec.reward, num_labels=1,
                                                                dtype=torch.float32)
    rows = read_prompts(spec.prompts)
    data = Dataset.from_dict({"input_ids": [r["ids"] for r in rows]})
    n_iter = spec.warmup + spec.iterations
    def make_args():
        return PPOConfig(
            output_dir=tempfile.mkdtemp(prefix="trl-bench-"),
            per_device_train_batch_size=spec.batch_size, gradient_accumulation_steps=1,
            num_mini_batches=spec.batch_size // spec.mini_batch_size,
            num_ppo_epochs=spec.ppo_epochs, response_length=spec.response_length,
            stop_token=None, kl_coef=spec.kl_coef, learning_rate=spec.learning_rate,
            temperature=spec.temperature, total_episodes=n_iter * spec.batch_size,
            local_rollout_forward_batch_size=spec.batch_size, bf16=bf16, fp16=False,
            use_cpu=use_cpu,
            report_to=[], save_strategy="no", num_sample_generations=0, seed=spec.seed,
            logging_steps=1, disable_tqdm=True, missing_eos_penalty=None)

    if probe:  # only asks whether TRL takes these settings here, and keeps its answer
        try:
            PPOTrainer(args=make_args(), processing_class=tok, model=policy, ref_model=ref,
                       reward_model=reward, train_dataset=data, value_model=value)
        except Exception as e:  # noqa: BLE001 - the message itself is the result
            emit({"refused": f"{type(e).__name__}: {e}"})
            return
        emit({"refused": None})
        return
    args = make_args()
    marks = []

    class Clock(TrainerCallback):
        def on_train_begin(self, *a, **k):
            marks.append(time.perf_counter())

        def on_step_end(self, *a, **k):
            marks.append(time.perf_counter())

    trainer = PPOTrainer(args=args, processing_class=tok, model=policy, ref_model=ref,
                         reward_model=reward, train_dataset=data, value_model=value,
                         eval_dataset=data.select(range(spec.batch_size)), callbacks=[Clock()])
    trainer.train()
    times = [b - a for a, b in zip(marks, marks[1:])]
    emit({"seconds": times[spec.warmup:], "warmup_seconds": times[:spec.warmup],
          "peak_rss_mb": peak_rss_mb(), "trained_sequences": spec.batch_size})


if __name__ == "__main__":
    main()
