"""PPO formulas against values computed by hand."""

import math

import pytest
import torch

from riskalign import AdaptiveKLController, compute_gae, kl_penalised_rewards, masked_whiten
from riskalign import policy_loss, value_loss
from riskalign.ppo.generation import response_mask_from_tokens


def test_gae_by_hand_right_padded():
    # row 0: 3 valid tokens; row 1: 2 valid then padding (terminal, reward 0, value 0)
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.5, 2.0, 9.0]])
    values = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 7.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    gamma, lam = 0.9, 0.8
    adv, ret = compute_gae(rewards, values, mask, gamma, lam)
    # row 0
    d2 = 1.0 + 0 - 0.3
    d1 = 0.0 + 0.9 * 0.3 - 0.2
    d0 = 0.0 + 0.9 * 0.2 - 0.1
    a2 = d2
    a1 = d1 + 0.72 * a2
    a0 = d0 + 0.72 * a1
    # row 1: last valid is t=1, bootstraps from 0
    e1 = 2.0 - 0.5
    e0 = 0.5 + 0.9 * 0.5 - 0.4
    b1 = e1
    b0 = e0 + 0.72 * b1
    expected = torch.tensor([[a0, a1, a2], [b0, b1, 0.0]])
    assert torch.allclose(adv, expected, atol=1e-6)
    assert torch.allclose(ret, (expected + values) * mask, atol=1e-6)
    assert ret[1, 2] == 0


def test_gae_gamma1_lambda1_is_reward_to_go_minus_value():
    rewards = torch.tensor([[1.0, 2.0, 3.0]])
    values = torch.tensor([[0.5, 0.25, 0.125]])
    adv, _ = compute_gae(rewards, values, torch.ones(1, 3), 1.0, 1.0)
    assert torch.allclose(adv, torch.tensor([[6 - 0.5, 5 - 0.25, 3 - 0.125]]))


def test_whitening_over_valid_tokens_only():
    x = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, -50.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    out = masked_whiten(x, mask)
    vals = torch.tensor([1.0, 2.0, 3.0, 4.0])
    std = math.sqrt(((vals - 2.5) ** 2).sum().item() / 3)  # Bessel-corrected
    expected = torch.tensor([[-1.5, -0.5, 0.0], [0.5, 1.5, 0.0]]) / std
    assert torch.allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("mask", [
    torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]]),  # right-padded responses
    torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]]),  # left-padded responses
])
def test_kl_penalty_and_score_placement(mask):
    lp = torch.tensor([[-1.0, -2.0, -3.0, -4.0], [-0.5, -0.5, -0.5, -0.5]])
    ref = torch.tensor([[-1.5, -1.0, -3.0, -9.0], [-1.0, -1.0, -1.0, -9.0]])
    scores = torch.tensor([10.0, -20.0])
    beta = 0.5
    rewards, kl = kl_penalised_rewards(scores, lp, ref, mask, beta)
    kl_hand = (lp - ref) * mask
    expected = -beta * kl_hand
    last = [max(i for i in range(4) if mask[r, i]) for r in range(2)]
    for r in range(2):
        expected[r, last[r]] += scores[r]
    assert torch.allclose(rewards, expected)
    assert torch.all(rewards[mask == 0] == 0) and torch.all(kl[mask == 0] == 0)


def test_kl_penalty_per_sample_coefficient():
    lp = torch.tensor([[-1.0, -1.0], [-1.0, -1.0]])
    ref = torch.tensor([[-2.0, -2.0], [-2.0, -2.0]])
    rewards, _ = kl_penalised_rewards(torch.zeros(2), lp, ref, torch.ones(2, 2),
                                      torch.tensor([0.1, 0.3]))
    assert torch.allclose(rewards, torch.tensor([[-0.1, -0.1], [-0.3, -0.3]]))


def test_clipped_policy_loss_by_hand():
    old = torch.zeros(1, 3)
    new = torch.log(torch.tensor([[1.5, 0.5, 1.1]]))  # ratios 1.5, 0.5, 1.1
    adv = torch.tensor([[1.0, -1.0, 2.0]])
    mask = torch.tensor([[1, 1, 1]])
    loss, stats = policy_loss(new, old, adv, mask, 0.2)
    # token 0: max(-1.5, -1.2) = -1.2 (clipped); token 1: max(0.5, 0.8) = 0.8 (clipped);
    # token 2: max(-2.2, -2.2) = -2.2
    assert loss.item() == pytest.approx((-1.2 + 0.8 - 2.2) / 3, abs=1e-6)
    assert stats["clipfrac"] == pytest.approx(2 / 3)


def test_policy_loss_ignores_padding_and_weights_samples():
    old = torch.zeros(2, 2)
    new = torch.zeros(2, 2)
    adv = torch.tensor([[1.0, 99.0], [3.0, 5.0]])
    mask = torch.tensor([[1, 0], [1, 1]])
    loss, _ = policy_loss(new, old, adv, mask, 0.2)
    assert loss.item() == pytest.approx(-(1 + 3 + 5) / 3)
    loss_w, _ = policy_loss(new, old, adv, mask, 0.2, sample_weight=torch.tensor([2.0, 0.5]))
    assert loss_w.item() == pytest.approx(-(2 * 1 + 0.5 * 3 + 0.5 * 5) / 3)


def test_clipped_value_loss_by_hand():
    old = torch.tensor([[0.0, 0.0]])
    new = torch.tensor([[1.0, 0.1]])
    ret = torch.tensor([[2.0, -1.0]])
    loss, _ = value_loss(new, old, ret, torch.ones(1, 2), 0.2)
    # token 0: max((1-2)^2, (0.2-2)^2) = 3.24; token 1: max(1.21, 1.21) = 1.21
    assert loss.item() == pytest.approx(0.5 * (3.24 + 1.21) / 2)


def test_adaptive_kl_controller_by_hand():
    ctl = AdaptiveKLController(0.2, target=6.0, horizon=10000)
    ctl.update(9.0, n_steps=128)  # e = clip(0.5) = 0.2
    assert ctl.value == pytest.approx(0.2 * (1 + 0.2 * 128 / 10000))
    ctl2 = AdaptiveKLController(0.2, target=6.0, horizon=10000)
    ctl2.update(5.4, n_steps=64)  # e = -0.1
    assert ctl2.value == pytest.approx(0.2 * (1 - 0.1 * 64 / 10000))


def test_response_mask_stops_after_first_eos():
    eos = 2
    resp = torch.tensor([[5, 2, 2, 2], [5, 6, 7, 8], [2, 9, 2, 9]])
    m = response_mask_from_tokens(resp, eos)
    assert m.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]


def test_value_explained_variance_by_hand(tiny_model_dir, tmp_path, monkeypatch):
    """The logged value_explained_var is 1 - Var(R - V) / Var(R) over the kept valid tokens,
    recomputed here from the returns and values GAE saw."""
    import riskalign.ppo.trainer as trainer_mod
    from riskalign.config import load_config
    from riskalign.ppo.advantages import masked_var
    from riskalign.ppo.run import build_trainer

    seen = {}
    real = trainer_mod.compute_gae

    def recording(rewards, values, mask, gamma, lam):
        adv, ret = real(rewards, values, mask, gamma, lam)
        seen.update(ret=ret, values=values, mask=mask)
        return adv, ret

    monkeypatch.setattr(trainer_mod, "compute_gae", recording)
    cfg = load_config(None, [f"model.policy={tiny_model_dir}", f"output_dir={tmp_path}",
                             "task.prompt_tokens=8", "task.new_tokens=6", "task.max_train=32",
                             "reward.kind=python", "reward.function=easy_rewards:short_text",
                             "ppo.batch_size=8", "ppo.mini_batch_size=4", "ppo.ppo_epochs=1",
                             "ppo.total_iterations=1", "log.tensorboard=false",
                             "log.eval_prompts=0"])
    stats = build_trainer(cfg)[0].step()
    r, v, m = seen["ret"], seen["values"], seen["mask"]
    assert stats["value_explained_var"] == pytest.approx(
        (1 - masked_var(r - v, m) / masked_var(r, m)).item(), rel=1e-6)
