"""Soft-risk schedule of RA-RLHF (Chaudhary et al., "Risk-Averse Fine-tuning of LLMs").

Iterations count from 1. With batch size B, total iterations M, risk level alpha, warm start n
and rho, the number of trajectories kept at iteration i is

    B0 = B                                         for i <= n
    B0 = ceil(alpha * B)                           for i >= ceil(rho * M)
    B0 = ceil(B * max(alpha, 1 - K * (i - n)))     otherwise, K = (1 - alpha) / (ceil(rho M) - n)

Computed with exact fractions of the decimal values given (0.4 is 2/5, not 0.40000000000000002),
so that ceil never rounds a value that is exactly an integer up by floating-point error.
"""

from __future__ import annotations

import math
from fractions import Fraction


def _exact(x: float) -> Fraction:
    return Fraction(str(x)) if isinstance(x, float) else Fraction(x)


def soft_risk_batch_size(iteration: int, total_iterations: int, batch_size: int, alpha: float,
                         warm_start: int, rho: float) -> int:
    """B0 for ``iteration`` (1-based); see the module docstring for the formula."""
    if not 0 < alpha <= 1:
        raise ValueError(f"risk.alpha must be in (0, 1], got {alpha}")
    if not 0 < rho <= 1:
        raise ValueError(f"risk.rho must be in (0, 1], got {rho}")
    if warm_start < 0 or batch_size < 1 or total_iterations < 1 or iteration < 1:
        raise ValueError("iteration, total_iterations and batch_size must be >= 1, "
                         "warm_start >= 0")
    a, B, n = _exact(alpha), batch_size, warm_start
    end = math.ceil(_exact(rho) * total_iterations)
    if iteration <= n:
        return B
    if iteration >= end:
        return math.ceil(a * B)
    K = (1 - a) / (end - n)
    return math.ceil(B * max(a, 1 - K * (iteration - n)))
