"""Where rewards enter PPO: (prompts, completions) -> scores [B] plus optional per-sample factors.

The trainer calls one ``RewardShaper`` per rollout. It returns the task score of each sample and,
for the adaptive uncertainty-aware objective, two per-sample factors:

* ``kl_scale`` c_i: the sample's KL coefficient is beta * c_i, inside the per-token reward
  r_t = -beta c_i (log pi - log pi_ref)_t (+ score on the last token); beta is still the KL
  controller's global coefficient;
* ``weight`` w_i: multiplies the sample's clipped policy-gradient term in the policy loss.

For ``adaptive`` (mu_i, s2_i = member mean and population variance of the standardised scores),
as in the paper's code (seed 003): b = mean(s2 over the first batch) / lambda with lambda the KL
coefficient every method starts from (``ppo.init_kl_coef``), then fixed; the per-sample KL
coefficient s2_i / b replaces lambda and w_i = b / (b + s2_i). In the trainer's terms
c_i = s2_i / (b lambda) = s2_i / mean_1(s2), so on the first batch beta c_i = s2_i / b exactly and
its mean is lambda, the baselines' coefficient. Afterwards the KL controller's beta scales every
sample's coefficient alike: beta_t s2_i / mean_1(s2) (a fixed controller keeps s2_i / b).
The advantages A_i come from GAE on r_t, so A_i estimates the return mu_i - c_i KL_i, and
weighting the sample's policy-gradient term by the constant w_i gives
grad E[w_i (mu_i - c_i KL_i)] = E[w_i A_i grad log pi], the paper's objective
E[b / (b + s2) (mu - s2 / b KL)]. The value loss is not weighted: the critic still predicts the
unweighted return. Whitening is one affine map over the batch, so it keeps the weights' ratios.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..registry import ENSEMBLE_METHODS
from .aggregate import (EnsembleError, aggregate_rewards, check_member_scores,
                        first_batch_scale, member_variance, uncertainty_weights)
from .base import RewardError, checked_scores


@dataclass
class ShapedReward:
    """What a shaper returns for a batch: scores [B] and optional per-sample KL scales c_i and
    policy-loss weights w_i [B], plus numbers to log."""

    scores: torch.Tensor                      # [B] task score, added on the last token
    kl_scale: torch.Tensor | None = None      # [B] c_i, multiplies beta
    weight: torch.Tensor | None = None        # [B] w_i, multiplies the policy-gradient term
    stats: dict = field(default_factory=dict)


class RewardShaper:
    """The reward plug point. Subclass it and define ``__call__(prompts, completions) ->
    ShapedReward``; ``state_dict``/``load_state_dict`` carry any state through checkpoints.
    ``source`` is a plain reward source ([B]) used for held-out scoring (by default the
    shaper's own scores)."""

    _source = None

    @property
    def source(self):
        if self._source is not None:
            return self._source
        return lambda prompts, completions: self(prompts, completions).scores

    @source.setter
    def source(self, value) -> None:
        self._source = value

    def __call__(self, prompts: list[str], completions: list[str]) -> ShapedReward:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class PlainShaper(RewardShaper):
    """One reward source, no per-sample factors (standard RLHF)."""

    def __init__(self, source):
        self.source = source

    def __call__(self, prompts: list[str], completions: list[str]) -> ShapedReward:
        return ShapedReward(checked_scores(self.source, prompts, completions))


class FunctionShaper(RewardShaper):
    """A plain function ``(prompts, completions) -> ShapedReward`` as a shaper (no state)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, prompts: list[str], completions: list[str]) -> ShapedReward:
        out = self.fn(prompts, completions)
        if not isinstance(out, ShapedReward):
            raise RewardError(f"reward shaper {getattr(self.fn, '__name__', self.fn)} returned "
                              f"{type(out).__name__}, not a ShapedReward",
                              f"batch of {len(prompts)}")
        return out


def checked_shaped(shaped, n: int) -> ShapedReward:
    """Insist on a ``ShapedReward`` with finite scores [n] and, when given, finite non-negative
    ``kl_scale`` and ``weight`` [n] (tensors); a ``RewardError`` names what is wrong."""
    where = f"batch of {n}"
    if not isinstance(shaped, ShapedReward):
        raise RewardError(f"reward shaper returned {type(shaped).__name__}, not a ShapedReward",
                          where)
    for name in ("scores", "kl_scale", "weight"):
        t = getattr(shaped, name)
        if t is None and name != "scores":
            continue
        if not isinstance(t, torch.Tensor) or t.shape != (n,):
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise RewardError(f"reward shaper's {name} must be a tensor of shape ({n},), got "
                              f"{shape}", where)
        bad = (~torch.isfinite(t)) if name == "scores" else (~torch.isfinite(t)) | (t < 0)
        if bad.any():
            i = int(bad.nonzero()[0])
            raise RewardError(f"reward shaper's {name} is {t[i].item()} for sample {i}; it must "
                              f"be finite" + ("" if name == "scores" else " and >= 0"), where)
    if not isinstance(shaped.stats, dict):
        raise RewardError("reward shaper's stats must be a dict", where)
    return shaped


def as_shaper(reward) -> RewardShaper:
    """A shaper as is; any plain reward source wrapped in ``PlainShaper``."""
    return reward if isinstance(reward, RewardShaper) else PlainShaper(reward)


def load_shaper(spec: str) -> RewardShaper:
    """``reward.shaper=module:name``: a ``RewardShaper`` instance, a subclass (built with no
    arguments) or a function returning ``ShapedReward`` (wrapped in ``FunctionShaper``)."""
    from .python_fn import import_function

    obj = import_function(spec, "reward.shaper")
    if isinstance(obj, type):
        try:
            obj = obj()
        except Exception as e:
            raise ValueError(f"reward.shaper: {spec}() raised {type(e).__name__}: {e} (a class "
                             f"named here is built with no arguments)") from None
    return obj if isinstance(obj, RewardShaper) else FunctionShaper(obj)


class EnsembleShaper(RewardShaper):
    """An ensemble's member scores [M, B] turned into rewards by ``method``."""

    def __init__(self, ensemble, method: str, lam: float = 0.5, member: int = 0,
                 kl_coef: float = 0.05):
        if method not in ENSEMBLE_METHODS:
            raise EnsembleError(f"reward.ensemble_method must be one of "
                                f"{', '.join(ENSEMBLE_METHODS.names)}, got {method!r}")
        if method in ("uwo", "adaptive") and len(ensemble) < 2:
            raise EnsembleError(f"reward.ensemble_method={method} needs the variance over "
                                f"members, which is undefined for an ensemble of "
                                f"{len(ensemble)} member")
        if method == "single" and not 0 <= member < len(ensemble):
            raise EnsembleError(f"reward.member must be in [0, {len(ensemble) - 1}], got {member}")
        self.ensemble, self.method, self.lam, self.member = ensemble, method, lam, member
        self.kl_coef = kl_coef  # adaptive: lambda, the KL coefficient the baselines start with
        self._source = ensemble  # its __call__ is the member mean
        self.b: float | None = None  # adaptive: fixed after the first batch

    def __call__(self, prompts: list[str], completions: list[str]) -> ShapedReward:
        scores = self.ensemble.members(prompts, completions)
        if scores.shape != (len(self.ensemble), len(prompts)):
            raise EnsembleError(f"ensemble returned shape {tuple(scores.shape)} for "
                                f"{len(self.ensemble)} members and {len(prompts)} samples")
        stats = {"ensemble_std_mean": (member_variance(scores).sqrt().mean().item()
                                       if len(scores) > 1 else 0.0)}
        if self.method == "single":
            check_member_scores(scores)
            return ShapedReward(scores[self.member].clone(), stats=stats)
        if self.method != "adaptive":
            return ShapedReward(aggregate_rewards(scores, self.method, self.lam), stats=stats)
        var = member_variance(scores)
        if self.b is None:
            self.b = first_batch_scale(var, self.kl_coef)
        weight, kl_coef = uncertainty_weights(var, self.b)   # w_i, s2_i / b
        kl_scale = kl_coef / self.kl_coef                    # the factor on the trainer's beta
        stats.update(uncertainty_b=self.b, uncertainty_weight_mean=weight.mean().item(),
                     uncertainty_kl_scale_mean=kl_scale.mean().item())
        return ShapedReward(scores.mean(0), kl_scale, weight, stats)

    def state_dict(self) -> dict:
        return {"b": self.b}

    def load_state_dict(self, state: dict) -> None:
        self.b = state.get("b")


__all__ = ["EnsembleShaper", "FunctionShaper", "PlainShaper", "RewardShaper", "ShapedReward",
           "as_shaper", "load_shaper"]
