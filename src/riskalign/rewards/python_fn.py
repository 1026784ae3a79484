"""A user's Python function ``module:function(prompts, completions) -> sequence of floats``.

The module is imported as ``python -m`` would: the current working directory comes first on the
import path. A function that raises, or returns something that is not one number per completion,
is reported as a ``RewardError`` naming the function and the batch (``--debug`` shows the
function's own traceback).
"""

from __future__ import annotations

import importlib
import os
import sys

import torch

from .base import RewardError


def import_function(spec: str, field: str = "reward.function"):
    """The callable ``module:function`` names; the working directory is importable."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{field} must look like module:function, got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"{field}: cannot import module '{module_name}' ({e})") from None
    except Exception as e:  # the module itself fails while it loads
        raise ValueError(f"{field}: importing '{module_name}' raised {type(e).__name__}: "
                         f"{e}") from e
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"{field}: '{module_name}' has no callable '{attr}'")
    return fn


class PythonReward:
    def __init__(self, spec: str, sign: float = 1.0):
        self.spec = spec
        self.fn = import_function(spec)
        self.sign = sign

    def __call__(self, prompts: list[str], completions: list[str]) -> torch.Tensor:
        where = f"batch of {len(prompts)}"
        try:
            out = self.fn(prompts, completions)
        except Exception as e:
            message = " ".join(str(e).split())  # one line, whatever the function raised
            raise RewardError(f"reward function {self.spec} raised {type(e).__name__}: "
                              f"{message}", where) from e
        try:
            scores = torch.as_tensor(out, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError):
            first = next(iter(out), out) if isinstance(out, (list, tuple)) else out
            raise RewardError(f"reward function {self.spec} returned {type(out).__name__} of "
                              f"{type(first).__name__}; it must return one number per "
                              f"completion", where) from None
        return scores * self.sign
