"""``RLAIFConfig``: every setting of ``riskalign rlaif``, with CPU-sized defaults.

The nested ``sft``, ``reward`` and ``rl`` sections are the ordinary SFT, reward-model and PPO
configs; the pipeline fills in their data, model and output paths itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..assets import DEFAULT_POLICY
from ..config import (RunConfig, _check, check_precision, opt,
                      precision_opt)
from ..reward_model.train import RewardTrainConfig
from ..presets import chat_run, chat_sft
from ..sft import SFTConfig

STAGES = ("prompts", "sft-data", "sft", "labels", "reward", "ppo", "eval")


def _reward_defaults() -> RewardTrainConfig:
    return RewardTrainConfig(epochs=3, learning_rate=1e-4, max_length=192, batch_size=16,
                             eval_fraction=0.15)


@dataclass
class RLAIFConfig:
    output_dir: str = opt("runs/rlaif", "Folder of every stage's output.")
    seed: int = opt(0, "Seed of the prompt split, sampling, virtue draws and training.")
    threads: int | None = opt(2, "torch CPU threads.")
    precision: str = precision_opt()
    policy: str = opt(DEFAULT_POLICY, "Chat model that answers, critiques, revises and is "
                                      "trained: smollm2-135m (offline), a folder or a hub id.")
    judge: str | None = opt(None, "Chat model that labels the preferences (default: policy).")
    on_topic_model: str = opt("minilm", "Sentence encoder of the on-topic rate at evaluation "
                                        "('minilm': the offline all-MiniLM-L6-v2, or a "
                                        "folder).")
    eval_judge: str | None = opt(None, "Judge of the after-vs-before win rate (default: judge; "
                                       "generate mode with judge_mode=generate, else logprob); it "
                                       "answers a general question, not the virtue questions.")
    prompts: str | None = opt(None, "Prompts: .txt (one per line), .jsonl/.csv/.parquet with "
                                    "'prompt' (or HH-RLHF 'chosen'), or a cached hub dataset; "
                                    "default: the shipped red-teaming set.")
    held_out: int = opt(32, "Prompts held out for the evaluation.")
    constitution: str | None = opt(None, "Constitution YAML (default: the six virtues).")
    sft_prompts: int = opt(64, "Training prompts answered, critiqued and revised for SFT.")
    label_prompts: int = opt(96, "Training prompts whose answer pairs the judge labels.")
    answer_tokens: int = opt(48, "Maximum tokens of an answer or a revision.")
    critique_tokens: int = opt(48, "Maximum tokens of a critique.")
    follow_up_tokens: int = opt(32, "Maximum tokens of a motivation or consequence reply.")
    temperature: float = opt(0.7, "Sampling temperature of answers, critiques and follow-ups.")
    batch_size: int = opt(16, "Sequences per generation or judge forward batch.")
    judge_mode: str = opt("auto", "auto (the mode most accurate on the judge validation "
                                  "pairs, measured at the labels stage), pointwise (each text "
                                  "alone: log-odds of Yes to the constitution's yes/no question; "
                                  "no position bias), logprob (A/B label probabilities in one "
                                  "forward pass, both orders), generate (a short reply parsed "
                                  "strictly, both orders) or embedding (each text alone: "
                                  "sentence-embedding cosine to the virtue's anchor sentence, "
                                  "judge_encoder; the labels stage still loads judge= to "
                                  "measure every mode).")
    judge_encoder: str = opt("minilm", "Sentence encoder of the embedding judge mode ('minilm': "
                                       "the offline all-MiniLM-L6-v2, or a folder or hub id).")
    judge_validation: str | None = opt(None, "jsonl of judge validation pairs (virtue, aspect, "
                                             "question, better, worse, better_reply, "
                                             "worse_reply); default: the shipped set.")
    virtues_per_comparison: int = opt(2, "Virtues sampled per pair and aspect; the judge's "
                                         "order-debiased probabilities are averaged over them.")
    tie_margin: float = opt(0.02, "A pair whose P(a better) is within this of 1/2 is a tie and "
                                  "dropped.")
    lam: float = opt(0.5, "lambda of the UWO reward mean - lambda * variance over the aspects.")
    load_in_4bit: bool = opt(False, "Load every model in 4 bits (NF4, bitsandbytes): the frozen "
                                    "weights under SFT and PPO LoRA, and the generating and "
                                    "judging roles; CUDA only, ignored with a note on CPU.")
    sft: SFTConfig = field(default_factory=chat_sft,
                           metadata={"help": "Constitutional SFT (LoRA) settings; "
                                             "pairs_file, model.policy, seed and output_dir are "
                                             "set by the pipeline."})
    reward: RewardTrainConfig = field(default_factory=_reward_defaults,
                                      metadata={"help": "Aspect reward-model settings; data, "
                                                     "output_dir, seed and ensemble (1) are set "
                                                     "by the pipeline."})
    rl: RunConfig = field(default_factory=chat_run,
                          metadata={"help": "PPO settings (risk.alpha < 1 adds "
                                            "RA-RLHF); model.policy, seed and output_dir are set "
                                            "by the pipeline, the answer length by "
                                            "answer_tokens."})

    def validate(self) -> "RLAIFConfig":
        _check(self.held_out >= 2, "held_out", ">= 2 (the on-topic rate ranks each answer "
               "among the other held-out prompts)", self.held_out)
        for k in ("held_out", "sft_prompts", "label_prompts", "answer_tokens", "critique_tokens",
                  "follow_up_tokens", "batch_size", "virtues_per_comparison"):
            _check(getattr(self, k) >= 1, k, ">= 1", getattr(self, k))
        _check(self.temperature > 0, "temperature", "> 0", self.temperature)
        _check(self.judge_mode in ("auto", "pointwise", "logprob", "generate", "embedding"),
               "judge_mode", "one of auto, pointwise, logprob, generate, embedding",
               self.judge_mode)
        _check(0 <= self.tie_margin < 0.5, "tie_margin", "in [0, 0.5)", self.tie_margin)
        _check(self.lam >= 0, "lam", ">= 0", self.lam)
        check_precision(self.precision)
        self.sft.validate()
        self.reward.validate()
        self.rl.validate()
        return self


__all__ = ["RLAIFConfig", "STAGES"]
