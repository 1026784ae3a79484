"""Reward functions for the end-to-end tests (loaded as reward.kind=python)."""


def short_text(prompts, completions):
    """Higher for completions with fewer characters: easy for a tiny policy to learn."""
    return [-len(c) / 50.0 for c in completions]


def wrong_length(prompts, completions):
    return [0.0] * (len(completions) + 1)


def nan_on_second(prompts, completions):
    return [float("nan") if i == 1 else 0.0 for i in range(len(completions))]
