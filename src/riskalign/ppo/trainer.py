"""The PPO loop: rollout -> per-token KL-penalised rewards -> GAE -> clipped updates -> KL control.

One iteration (``PPOTrainer.step``):
1. sample B completions for B prompts, score them, compute old log-probs, values, ref log-probs;
   the reward shaper (``rewards.shaping``) turns texts into scores and, for the adaptive
   ensemble method, per-sample KL scales c_i and policy-loss weights w_i;
2. r_t = -beta c_i (log pi - log pi_ref) on every valid token, plus the score on the last one
   (c_i = 1 unless the shaper says otherwise);
3. choose the trajectories that train (``select``: the RA-RLHF tail, or all of them);
4. GAE, and advantage whitening over the chosen trajectories' valid tokens (or, with
   ``ppo.whiten_over='batch'``, with the whole batch's mean and variance); the critic's fit
   1 - Var(R - V) / Var(R) is logged over the chosen trajectories (``value_explained_var``) and
   the whole batch (``value_explained_var_batch``);
5. ``ppo_epochs`` passes of shuffled minibatches, each cut to its longest sequence: clipped
   policy loss (each sample's term times w_i when given) + vf_coef * clipped value loss, AdamW
   (fused), gradient clipping. With ``ppo.minibatches='batch'`` an epoch has
   ceil(B / mini_batch_size) minibatches however many trajectories train (RA-RLHF's tail gets
   as many optimizer steps as RLHF, in smaller minibatches); with 'kept' ceil(B0 / mini_batch_size);
6. the KL controller sees the mean per-sequence KL of the chosen trajectories, and advances by
   the whole batch size B (its rate K_beta = B / horizon does not shrink with the tail).
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..config import RunConfig, fill_missing, first_difference, to_dict
from ..models import ActorCritic
from ..rewards.base import RewardError
from ..rewards.shaping import as_shaper
from .advantages import (compute_gae, kl_penalised_rewards, masked_mean, masked_var,
                         masked_whiten)
from .checkpoint import (CheckpointError, latest_checkpoint, load_checkpoint, remove_temps,
                         rng_state, save_checkpoint, set_rng_state)
from ..runtime import adamw
from .kl_control import AdaptiveKLController, FixedKLController
from .losses import policy_loss, value_loss
from .distributed import Dist
from .generation import Generator, HFGenerator
from .rollout import GenerationSettings, Rollout, collect, unpadded_span

# select(iteration, rollout, rewards [B, T], dist) -> (indices of the trajectories that train,
# stats to log); see ``risk.selection``.
Selector = Callable[[int, Rollout, torch.Tensor, Dist], tuple[torch.Tensor, dict]]


def sample_factors(ro: Rollout, beta: float) -> tuple[float | torch.Tensor, torch.Tensor | None]:
    """Where a reward shaper's per-sample factors act, in one place: each sample's KL
    coefficient beta * c_i (beta alone when the shaper gives no c_i) and its policy-loss
    weight w_i (None: unweighted)."""
    return (beta if ro.kl_scale is None else beta * ro.kl_scale), ro.weight


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def checked_keep(keep, n: int, device) -> torch.Tensor:
    """A selector's answer as ascending unique indices (LongTensor) into a batch of ``n``; a
    boolean mask or a list is accepted, anything else out of range is a ``ValueError``."""
    try:
        keep = torch.as_tensor(keep, device=device)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"the selector returned {type(keep).__name__}, not indices") from None
    if keep.dtype == torch.bool:
        if keep.shape != (n,):
            raise ValueError(f"the selector's mask has shape {tuple(keep.shape)}, not ({n},)")
        keep = keep.nonzero().flatten()
    if keep.numel() and (keep.dtype.is_floating_point or keep.dim() != 1):
        raise ValueError("the selector must return a 1-D tensor of integer indices")
    keep = keep.long().flatten()
    if keep.numel() and (keep.min() < 0 or keep.max() >= n):
        raise ValueError(f"the selector returned an index outside the batch of {n}")
    if len(keep.unique()) != len(keep):
        raise ValueError("the selector returned an index twice")
    return keep.sort().values


class PromptStream:
    """Seeded passes over the prompts: epoch e uses permutation randperm(n, seed + e)."""

    def __init__(self, n: int, batch_size: int, seed: int):
        if n < batch_size:
            raise ValueError(f"ppo.batch_size ({batch_size}) is larger than the number of "
                             f"training prompts ({n})")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.epoch, self.position = 0, 0

    def next(self) -> list[int]:
        if self.position + self.batch_size > self.n:
            self.epoch, self.position = self.epoch + 1, 0
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        perm = torch.randperm(self.n, generator=g)
        batch = perm[self.position:self.position + self.batch_size].tolist()
        self.position += self.batch_size
        return batch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, s: dict) -> None:
        self.epoch, self.position = int(s["epoch"]), int(s["position"])


def total_iterations(cfg: RunConfig, n_prompts: int) -> int:
    """M: ppo.total_iterations, else data_epochs * floor(n_prompts / batch_size)."""
    if cfg.ppo.total_iterations:
        return cfg.ppo.total_iterations
    return max(1, cfg.ppo.data_epochs * (n_prompts // cfg.ppo.batch_size))


class PPOTrainer:
    """The PPO loop (module docstring: one iteration step by step). Built from a config, an
    ``ActorCritic`` policy, a frozen reference LM (None with LoRA), a tokenizer, a reward (a
    plain source or a ``RewardShaper``), the training prompts, generation settings and an
    optional selector; ``train()`` runs to ``total`` iterations, ``resume()`` continues from
    the latest checkpoint. ``riskalign.make_trainer`` builds one from your own objects."""

    def __init__(self, cfg: RunConfig, policy: ActorCritic, ref, tokenizer, reward,
                 prompts: list[str], gen: GenerationSettings, select: Selector | None = None,
                 generator: Generator | None = None):
        self.cfg, self.policy, self.ref, self.tokenizer = cfg, policy, ref, tokenizer
        self.prompts, self.gen, self.select = prompts, gen, select
        self.generator = generator or HFGenerator()
        self.shaper = as_shaper(reward)
        p = cfg.ppo
        self.kl_ctl = (AdaptiveKLController(p.init_kl_coef, p.target_kl, p.horizon)
                       if p.adap_kl_ctrl else FixedKLController(p.init_kl_coef))
        self.dist = Dist()
        self.dist.place(policy, ref)
        self.params = [x for x in policy.parameters() if x.requires_grad]
        self.optimizer = adamw(self.params, p.learning_rate, p.weight_decay)
        if self.dist.world > 1:  # the same weights everywhere (broadcast), different samples
            torch.manual_seed(cfg.seed + 1_000_003 * self.dist.rank)
        for name in ("batch_size", "mini_batch_size"):
            if getattr(p, name) % self.dist.world:
                raise ValueError(f"ppo.{name} ({getattr(p, name)}) must be divisible by the "
                                 f"number of processes ({self.dist.world})")
        # the training forward goes through the wrapper that averages gradients across processes
        self.train_model, self.optimizer = self.dist.prepare(policy, self.optimizer)
        self.stream = PromptStream(len(prompts), p.batch_size, cfg.seed)
        self.total = total_iterations(cfg, len(prompts))
        self.iteration = 0
        self.last_rollout: Rollout | None = None  # the latest iteration's, for on_step hooks
        self.history: list[dict] = []
        self.out = Path(cfg.output_dir)

    @property
    def reward(self):
        """A plain reward source [B] for held-out scoring: the current shaper's."""
        return self.shaper.source

    # ------------------------------------------------------------------ one iteration
    def step(self) -> dict:
        p, t_start, timings = self.cfg.ppo, time.perf_counter(), {}
        self.iteration += 1
        batch = self.dist.shard([self.prompts[i] for i in self.stream.next()])
        try:
            ro = collect(self.policy, self.ref, self.tokenizer, self.shaper, batch, self.gen,
                         p.forward_batch_size, timings, self.generator)
        except RewardError as e:
            e.iteration = self.iteration
            raise
        beta = self.kl_ctl.value
        kl_coef, weight = sample_factors(ro, beta)
        rewards, kl = kl_penalised_rewards(ro.scores, ro.logprobs, ro.ref_logprobs,
                                           ro.response_mask, kl_coef)
        keep, select_stats = (self.select(self.iteration, ro, rewards, self.dist) if self.select
                              else (torch.arange(len(ro), device=ro.scores.device), {}))
        keep = checked_keep(keep, len(ro), ro.scores.device)
        if int(self.dist.reduce(torch.tensor(len(keep), device=self.dist.device))) == 0:
            raise ValueError(f"the selector kept no trajectory at iteration {self.iteration}; "
                             f"it must keep at least one")
        self.last_rollout = ro
        full_mask = ro.response_mask.float()
        advantages, returns = compute_gae(rewards, ro.values, full_mask, p.gamma, p.lam)
        if p.whiten_advantages and p.whiten_over == "batch":  # the whole batch's statistics
            advantages = masked_whiten(advantages, full_mask, reduce=self.dist.reduce)
        fit_batch = self._fit(returns, ro.values, full_mask)
        sub, kl = ro.subset(keep), kl[keep]
        advantages, returns, mask = advantages[keep], returns[keep], full_mask[keep]
        fit = self._fit(returns, sub.values, mask)
        if p.whiten_advantages and p.whiten_over == "kept":
            advantages = masked_whiten(advantages, mask, reduce=self.dist.reduce)
        t0 = time.perf_counter()
        stats = self.update(sub, advantages, returns, stand_in=ro,
                            weight=None if weight is None else weight[keep])
        self.generator.update_weights(self.policy)
        timings["update"] = time.perf_counter() - t0
        trained = torch.zeros(len(ro), dtype=torch.bool, device=ro.scores.device)
        trained[keep] = True
        scores, trained = self.dist.gather(ro.scores), self.dist.gather(trained)  # whole batch
        kept = int(trained.sum())
        mean_kl = (self.dist.reduce(kl.sum(1).sum()) / kept).item()
        entropy = masked_mean(ro.entropy, ro.response_mask.float(), reduce=self.dist.reduce)
        # the mean per-sample KL coefficient applied: beta, or beta * c_i averaged (adaptive)
        kl_coef_mean = (kl_coef if isinstance(kl_coef, float)
                        else self.dist.gather(kl_coef).mean().item())
        self.kl_ctl.update(mean_kl, len(scores))  # whole batch: the rate is B / horizon
        stats.update(
            iteration=self.iteration, score_mean=scores.mean().item(),
            score_std=scores.std().item() if len(scores) > 1 else 0.0,
            kept=kept, kept_score_mean=scores[trained].mean().item(), kl=mean_kl, beta=beta,
            kl_coef_mean=kl_coef_mean, value_explained_var=fit.item(),
            value_explained_var_batch=fit_batch.item(),
            entropy=entropy.item(),
            response_len=ro.response_mask.sum(1).float().mean().item(),
            **{f"time_{k}": v for k, v in timings.items()},
            time_total=time.perf_counter() - t_start)
        for source, extra in (("selector", select_stats), ("reward shaper", ro.reward_stats)):
            clash = sorted(set(extra) & set(stats))
            if clash:
                raise ValueError(f"the {source}'s stats name {clash[0]!r}, which the trainer "
                                 f"logs itself; choose another name")
            stats.update(extra)
        return stats

    def _fit(self, returns: torch.Tensor, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The critic's fit to these trajectories: 1 - Var(R - V) / Var(R) over valid tokens."""
        r = self.dist.reduce
        return 1 - masked_var(returns - values, mask, reduce=r) / masked_var(
            returns, mask, reduce=r).clamp(min=1e-12)

    def update(self, ro: Rollout, advantages: torch.Tensor, returns: torch.Tensor,
               stand_in: Rollout | None = None, weight: torch.Tensor | None = None) -> dict:
        """PPO epochs over the trajectories that train; ``weight`` [n]: each one's policy-loss
        weight (``sample_factors``). ``stand_in`` (this process's whole rollout) lends a
        zero-weighted sample when none of this process's trajectories train."""
        p, n, T = self.cfg.ppo, len(ro), ro.response_len
        mask = ro.response_mask.float()
        d = self.dist
        mb_size = p.mini_batch_size // d.world
        cut = len(stand_in) if (p.minibatches == "batch" and stand_in is not None) else n
        # every process takes the same number of steps, even with unequal tails; a tail smaller
        # than the whole batch's step count takes one step per trajectory (no empty minibatch)
        local = min(-(-cut // mb_size), n) if cut != n else -(-n // mb_size)
        n_steps = int(d.reduce(torch.tensor(local, device=d.device), "max").item())
        if n == 0:  # no trajectory of this process trains: zero-weighted stand-ins keep it in step
            ro, weight = stand_in.subset(torch.zeros(1, dtype=torch.long)), None
            advantages, returns = torch.zeros_like(ro.values), torch.zeros_like(ro.values)
            mask = ro.response_mask.float()
        sums: dict[str, float] = {}
        steps = 0
        self.policy.train()
        for _ in range(p.ppo_epochs):
            perm = torch.randperm(n)
            # full minibatches (the last one short), or a tail cut into n_steps near-equal parts
            parts = ([perm[k * mb_size:(k + 1) * mb_size] for k in range(n_steps)]
                     if cut == n else torch.tensor_split(perm, n_steps))
            for mb in parts:
                scale = d.share(mask[mb].sum())  # local token mean -> share of the global one
                if len(mb) == 0:  # nothing left here: take part with a zero-weighted sample
                    mb = torch.zeros(1, dtype=torch.long)
                first, t = unpadded_span(ro.attention_mask[mb], ro.response_mask[mb])
                cols = slice(first, ro.input_ids.shape[1] - T + t)
                out = self.train_model(ro.input_ids[mb, cols], ro.attention_mask[mb, cols], t,
                                       self.gen.temperature)
                m = mask[mb, :t]
                pl, pstats = policy_loss(out["logprobs"], ro.logprobs[mb, :t],
                                         advantages[mb, :t], m, p.cliprange,
                                         None if weight is None else weight[mb])
                vl, vstats = value_loss(out["values"], ro.values[mb, :t], returns[mb, :t], m,
                                        p.cliprange_value)
                loss = pl + p.vf_coef * vl
                self.optimizer.zero_grad(set_to_none=True)
                d.backward(loss if scale == 1.0 else loss * scale)
                if p.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(self.params, p.max_grad_norm)
                self.optimizer.step()
                for k2, v in {"policy_loss": pl.item(), "value_loss": vl.item(),
                              **pstats, **vstats}.items():
                    sums[k2] = sums.get(k2, 0.0) + v
                steps += 1
        return {k: v / steps for k, v in sums.items()}

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "kl_ctl": self.kl_ctl.state_dict(),
                "stream": self.stream.state_dict(), "rng": rng_state(),
                "shaper": self.shaper.state_dict(),
                "config": json.dumps(_training_keys(to_dict(self.cfg)), sort_keys=True)}

    def save(self) -> Path | None:
        if not self.dist.is_main:
            return None
        return save_checkpoint(self.out / "checkpoints", self.iteration, self.policy,
                               self.state_dict(), self.cfg.log.keep_checkpoints)

    def resume(self) -> bool:
        """Load the latest checkpoint if there is one; True if a run was resumed."""
        remove_temps(self.out / "checkpoints")
        path = latest_checkpoint(self.out / "checkpoints")
        if path is None:
            return False
        state = load_checkpoint(path, self.policy)
        lacking = [k for k in _STATE_KEYS if k not in state]
        if lacking:
            raise CheckpointError(f"checkpoint {path}: state.pt lacks its '{lacking[0]}' entry")
        try:
            saved = _with_legacy(json.loads(state["config"]))
        except (TypeError, ValueError):
            raise CheckpointError(f"checkpoint {path}: state.pt holds an unreadable "
                                  f"config") from None
        now = _training_keys(to_dict(self.cfg))
        if saved != now:
            key = first_difference(saved, now)
            raise CheckpointError(f"checkpoint {path} was made with a different config "
                                  f"('{key}' differs); resume with the same settings")
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"checkpoint {path}: optimizer state does not fit ({e})") from None
        try:
            self.kl_ctl.load_state_dict(state["kl_ctl"])
            self.stream.load_state_dict(state["stream"])
            self.shaper.load_state_dict(state.get("shaper", {}))
            set_rng_state(state["rng"])
            self.iteration = int(state["iteration"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"checkpoint {path}: state.pt is malformed "
                                  f"({type(e).__name__}: {e})") from None
        return True

    # ------------------------------------------------------------------ the loop
    def train(self, on_step: Callable[[dict], None] | None = None) -> list[dict]:
        """Run until ``self.total`` iterations, checkpointing every ``log.checkpoint_every``;
        returns (and keeps as ``self.history``) this call's per-iteration stats."""
        history = self.history = []
        while self.iteration < self.total:
            stats = self.step()
            history.append(stats)
            if on_step:
                on_step(stats)
            if (self.iteration % self.cfg.log.checkpoint_every == 0
                    or self.iteration == self.total):
                self.save()
        return history


_STATE_KEYS = ("optimizer", "kl_ctl", "stream", "rng", "config", "iteration")

# settings added after a checkpoint was written: the behaviour it was trained with
_LEGACY = {"precision": "fp32", "ppo": {"minibatches": "kept", "whiten_over": "kept"},
           "task": {"validation": 0}, "reward": {"shaper": None},
           "risk": {"selector": "soft-risk"}}


def _training_keys(cfg: dict) -> dict:
    """The config sections that change the result (logging and paths may differ on resume),
    with ``precision`` as resolved on this machine (auto may differ between machines)."""
    from ..precision import resolve

    keys = {k: v for k, v in cfg.items() if k not in ("log", "output_dir", "threads")}
    if "precision" in keys:
        keys["precision"] = resolve(keys["precision"])
    return keys


def _with_legacy(saved: dict) -> dict:
    """A saved config with the settings it predates filled in as they behaved then."""
    from ..precision import resolve

    out = dict(saved)
    if out.get("precision") == "auto":  # saved unresolved by an early version: resolve here
        out["precision"] = resolve("auto")
    for k, v in _LEGACY.items():  # a section the saved config lacks takes the legacy values
        if isinstance(v, dict):
            out.setdefault(k, {})
    return fill_missing(out, _LEGACY)


