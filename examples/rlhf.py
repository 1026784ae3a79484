"""RLHF with PPO: a plain Python reward function and a `datasets.Dataset` of prompts.

    python examples/rlhf.py                # the offline 135M policy, about 5 minutes on 2 cores
    python examples/rlhf.py --iterations 2 --model path/to/a/causal-lm

The reward counts the encouraging words of each completion: any function
``(prompts, completions) -> one number per completion`` works the same way.
"""

import argparse

from datasets import Dataset

from riskalign import presets, task_prompts, train

ENCOURAGING = {"good", "great", "better", "best", "helped", "helps", "works", "effective",
               "relief", "recommend", "happy", "love"}


def encouraging_words(prompts, completions):
    return [sum(w.strip(".,!?").lower() in ENCOURAGING for w in c.split()) / 3
            for c in completions]


def main(model="smollm2-135m", iterations=12, output_dir="runs/examples/rlhf"):
    cfg = presets.cpu_run()                   # a RunConfig sized for a CPU; change what you like
    cfg.output_dir, cfg.ppo.total_iterations = output_dir, iterations
    cfg.log.eval_prompts = 32                 # mean reward on held-out prompts before and after
    reviews = task_prompts("drugreview-sentiment", model=model, n=512)
    prompts = Dataset.from_dict({"prompt": reviews})
    result = train(model, reward=encouraging_words, prompts=prompts, config=cfg,
                   eval_prompts=task_prompts("drugreview-sentiment", "test", model, n=32),
                   overwrite=True)
    print(f"mean reward on held-out prompts: {result.summary['score_before']:+.3f} -> "
          f"{result.summary['score_after']:+.3f}; model in {result.output_dir}/final")
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m", help="Model name, folder or hub id.")
    ap.add_argument("--iterations", type=int, default=12, help="PPO iterations.")
    ap.add_argument("--output-dir", default="runs/examples/rlhf", help="Output folder.")
    a = ap.parse_args()
    main(a.model, a.iterations, a.output_dir)
