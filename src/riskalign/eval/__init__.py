"""Evaluation: held-out sampling, tail metrics, perplexity, pictures and the report."""

from .metrics import (across_seeds, cvar, distinct_n, distinct_n_per_text, mean_std,
                      quantile_curve, tail_count, threshold_reward, worst_prompts_reward)
from .sampling import sample_and_score

__all__ = ["across_seeds", "cvar", "distinct_n", "distinct_n_per_text", "mean_std", "quantile_curve",
           "sample_and_score", "tail_count", "threshold_reward", "worst_prompts_reward"]
