"""A user's Python function ``module:function(prompts, completions) -> sequence of floats``."""

from __future__ import annotations

import importlib

import torch


class PythonReward:
    def __init__(self, spec: str, sign: float = 1.0):
        module_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise ValueError(f"reward.function: cannot import module '{module_name}' ({e})") from None
        fn = getattr(module, attr, None)
        if not callable(fn):
            raise ValueError(f"reward.function: '{module_name}' has no callable '{attr}'")
        self.fn = fn
        self.sign = sign

    def __call__(self, prompts: list[str], completions: list[str]) -> torch.Tensor:
        out = self.fn(prompts, completions)
        return torch.as_tensor(out, dtype=torch.float32) * self.sign
