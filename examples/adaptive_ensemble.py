"""Uncertainty-aware RLHF: an ensemble of rewards whose disagreement sets each sample's KL
coefficient and policy-loss weight (ensemble_method="adaptive").

    python examples/adaptive_ensemble.py   # the offline 135M policy, about 5 minutes on 2 cores

Where the members disagree about a completion, its reward is less trustworthy: the adaptive
method pulls that sample harder towards the reference policy and gives it less weight. Here
the members are three Python functions; an ensemble of trained reward models
(``riskalign reward --ensemble 5``, loaded with ``riskalign.rewards.ensemble.EnsembleReward``)
plugs in the same way. ``ensemble_method`` may also be "mean", "min" or "uwo".
"""

import argparse

from riskalign import Ensemble, presets, task_prompts, train
from riskalign.config import RewardConfig
from riskalign.rewards import build_reward

vader = build_reward(RewardConfig(kind="vader"))


def sentiment(prompts, completions):
    return vader(prompts, completions)


def sentiment_of_completion(prompts, completions):
    return vader([""] * len(completions), completions)


def length_bonus(prompts, completions):
    return [min(len(c.split()), 20) / 20 for c in completions]


def main(model="smollm2-135m", iterations=12, output_dir="runs/examples/adaptive"):
    cfg = presets.cpu_run()
    cfg.output_dir, cfg.ppo.total_iterations = output_dir, iterations
    members = Ensemble([sentiment, sentiment_of_completion, length_bonus])
    result = train(model, reward=members, ensemble_method="adaptive",
                   prompts=task_prompts("drugreview-sentiment", model=model, n=512),
                   config=cfg, overwrite=True)
    last = result.trainer.history[-1]
    print(f"last iteration: mean per-sample KL coefficient {last['kl_coef_mean']:.4f}, mean "
          f"policy-loss weight {last['uncertainty_weight_mean']:.3f}")
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m", help="Model name, folder or hub id.")
    ap.add_argument("--iterations", type=int, default=12, help="PPO iterations.")
    ap.add_argument("--output-dir", default="runs/examples/adaptive", help="Output folder.")
    a = ap.parse_args()
    main(a.model, a.iterations, a.output_dir)
