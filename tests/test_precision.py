"""Mixed precision: the auto choice, the bf16 generation copy, and PPO in bf16 against fp32."""

from __future__ import annotations

import copy

import pytest
import torch

from riskalign import precision
from riskalign.ppo.run import build_trainer
from test_ppo_e2e import tiny_cfg


def test_auto_follows_the_hardware_check(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda device=None: False)
    assert precision.resolve("auto") == "fp32"
    monkeypatch.setattr(precision, "native_bf16", lambda device=None: True)
    assert precision.resolve("auto") == "bf16"
    assert precision.resolve("fp32") == "fp32" and precision.resolve("bf16") == "bf16"
    with pytest.raises(ValueError, match="precision"):
        precision.resolve("fp16")


def test_cpu_check_reads_both_bf16_flags(monkeypatch):
    for avx512, amx, expected in ((False, False, False), (True, False, True), (False, True, True)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512: v,
                            raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v, raising=False)
        assert precision.cpu_has_native_bf16() is expected


def test_use_prints_the_choice_once(capsys):
    precision._announced.clear()
    precision.use("auto")
    precision.use("auto")
    out = capsys.readouterr().out
    assert out.count("precision: fp32 (auto: no native bf16") == 1
    assert precision.mode() == "fp32"


def test_autocast_only_in_bf16_mode():
    x, w = torch.randn(2, 4), torch.randn(3, 4)
    with precision.autocast():
        assert torch.nn.functional.linear(x, w).dtype == torch.float32
    precision.use("bf16")
    with precision.autocast():
        assert torch.nn.functional.linear(x, w).dtype == torch.bfloat16


def _lora_policy(tiny_model_dir):
    from riskalign.config import ModelConfig
    from riskalign.models import load_policy

    cfg = ModelConfig(policy=tiny_model_dir)
    cfg.lora.enabled = True
    policy, _ = load_policy(cfg)
    torch.manual_seed(1)
    with torch.no_grad():  # non-zero adapters, so that merging matters
        for n, p in policy.lm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.2)
    return policy


def test_merged_weights_match_peft_merge(tiny_model_dir):
    policy = _lora_policy(tiny_model_dir)
    merged = dict(copy.deepcopy(policy.lm).merge_and_unload().named_parameters())
    mine = precision.merged_weights(policy.lm)
    assert set(mine) == set(merged)
    for name, w in merged.items():
        torch.testing.assert_close(mine[name], w, rtol=0, atol=1e-6)


def test_generation_copy_is_bf16_merged_and_refreshed(tiny_model_dir):
    policy = _lora_policy(tiny_model_dir)
    gen = precision.GenerationCopy(policy.lm)
    assert all(p.dtype == torch.bfloat16 for p in gen.model.parameters())
    from peft.tuners.lora import LoraLayer

    assert not any(isinstance(m, LoraLayer) for m in gen.model.modules())
    assert any(isinstance(m, LoraLayer) for m in policy.lm.modules())  # the policy keeps them
    ids = torch.randint(0, 1000, (2, 6))
    with torch.no_grad():
        want = policy.lm(input_ids=ids).logits
        got = gen.model(input_ids=ids).logits.float()
    assert (got - want).abs().max() < 0.05 * want.abs().max()
    with torch.no_grad():  # an "update": the adapters move; the copy follows after refresh
        for n, p in policy.lm.named_parameters():
            if "lora_A" in n:
                p.add_(0.3)
    merged = precision.merged_weights(policy.lm)
    gen.refresh(policy.lm)
    for name, p in gen.model.named_parameters():
        assert torch.equal(p, merged[name].to(torch.bfloat16)), name


def test_trainer_refreshes_the_bf16_copy_after_each_update(tiny_model_dir, tmp_path):
    cfg = tiny_cfg(tiny_model_dir, tmp_path, "precision=bf16", "ppo.total_iterations=1",
                   "model.lora.enabled=true", "log.checkpoint_every=100")
    trainer, _ = build_trainer(cfg)
    trainer.step()
    copy_model = trainer.generator.copy.model
    merged = precision.merged_weights(trainer.policy.lm)
    for name, p in copy_model.named_parameters():
        assert torch.equal(p, merged[name].to(torch.bfloat16)), name
    assert any(not torch.equal(p.float(), merged[n]) for n, p in copy_model.named_parameters())
    rope = [b for n, b in copy_model.named_buffers() if "inv_freq" in n]
    assert rope and all(b.dtype == torch.float32 for b in rope)   # buffers stay float32


def _first_ratio(monkeypatch, trainer) -> torch.Tensor:
    """max |pi / pi_old - 1| over the valid tokens of the first minibatch of the iteration."""
    import riskalign.ppo.trainer as trainer_mod

    seen = []
    real = trainer_mod.policy_loss

    def recording(logprobs, old, adv, mask, *args, **kwargs):
        if not seen:
            seen.append(((logprobs - old).exp() - 1).abs()[mask.bool()].max().detach())
        return real(logprobs, old, adv, mask, *args, **kwargs)

    monkeypatch.setattr(trainer_mod, "policy_loss", recording)
    trainer.step()
    return seen[0]


@pytest.mark.parametrize("lora", [True, False])
def test_first_minibatch_ratio_is_one_in_bf16(tiny_model_dir, tmp_path, monkeypatch, lora):
    """Old log-probs (rollout, forward batch 16) and the update's (minibatch 8, trimmed window)
    come through the same autocast path: the first ratio is 1 within 1e-3."""
    cfg = tiny_cfg(tiny_model_dir, tmp_path, "precision=bf16", "ppo.total_iterations=1",
                   f"model.lora.enabled={str(lora).lower()}", "model.lora.dropout=0",
                   "log.checkpoint_every=100")
    trainer, _ = build_trainer(cfg)
    assert precision.mode() == "bf16"
    assert _first_ratio(monkeypatch, trainer) < 1e-3


def test_bf16_iteration_tracks_fp32(tiny_model_dir, tmp_path):
    """One PPO iteration on the same sampled tokens, from the same weights, in fp32 and in bf16.
    Stated tolerances, on log-probs of those tokens (mean / max absolute difference, nats):
    the starting policy scored in bf16 against fp32 within 0.1 / 1.0 (this random model's
    logits reach |14|, where bf16's spacing is 0.06); after the update (both scored in fp32)
    within 0.1 on average and at most half the update's own mean change, and the two updates
    move the log-probs alike (correlation > 0.9). Adam turns tiny gradients into full steps, so
    bf16's rounding spreads further through an update than through a forward pass."""
    fixed = {}

    class Replay:
        """Samples once (fp32), then replays the same tokens."""

        def generate(self, policy, tokenizer, prompts, settings, batch_size):
            from riskalign.ppo.generation import generate

            if "batch" not in fixed:
                with precision_fp32():
                    fixed["batch"] = generate(policy, tokenizer, prompts, settings, batch_size,
                                              policy.lm)
            return tuple(t.clone() for t in fixed["batch"])

        def update_weights(self, policy):
            pass

    def score(policy, mode="fp32") -> torch.Tensor:
        ids, att, mask = fixed["batch"]
        saved, precision._mode = precision.mode(), mode
        with torch.no_grad():
            out = policy(ids, att, mask.shape[1], with_values=False)["logprobs"]
        precision._mode = saved
        return out[mask.bool()]

    after = {}
    for mode in ("fp32", "bf16"):
        cfg = tiny_cfg(tiny_model_dir, tmp_path / mode, f"precision={mode}",
                       "ppo.total_iterations=1", "log.checkpoint_every=100",
                       "ppo.learning_rate=1e-4")
        trainer, _ = build_trainer(cfg)
        trainer.generator = Replay()
        if mode == "fp32":
            start = copy.deepcopy(trainer.policy)
        trainer.step()
        after[mode] = score(trainer.policy)
    before = score(start)
    rollout = (score(start, "bf16") - before).abs()
    assert rollout.mean() < 0.1 and rollout.max() < 1.0, (rollout.mean(), rollout.max())
    diff = (after["bf16"] - after["fp32"]).abs()
    moved_fp32, moved_bf16 = after["fp32"] - before, after["bf16"] - before
    assert diff.mean() < 0.1 and diff.mean() < 0.5 * moved_fp32.abs().mean(), (
        diff.mean(), moved_fp32.abs().mean())
    assert torch.corrcoef(torch.stack([moved_fp32, moved_bf16]))[0, 1] > 0.9


class precision_fp32:
    """Run a block in fp32 mode and restore the mode after."""

    def __enter__(self):
        self.saved = precision.mode()
        precision._mode = "fp32"

    def __exit__(self, *exc):
        precision._mode = self.saved
