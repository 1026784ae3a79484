"""Ensemble aggregation, adaptive uncertainty weights and the Bradley-Terry loss, by hand."""

import math

import pytest
import torch

from riskalign import aggregate_rewards, bradley_terry_loss, uncertainty_weights
from riskalign.reward_model.loss import pairwise_accuracy
from riskalign.rewards.aggregate import EnsembleError, first_batch_scale, member_variance

# two members, three samples; per sample: mean 2, 2, 1; population variance 1, 0, 4
S = torch.tensor([[1.0, 2.0, 3.0],
                  [3.0, 2.0, -1.0]])


def test_each_aggregation_by_hand():
    assert aggregate_rewards(S, "mean").tolist() == [2.0, 2.0, 1.0]
    assert aggregate_rewards(S, "min").tolist() == [1.0, 2.0, -1.0]
    assert member_variance(S).tolist() == [1.0, 0.0, 4.0]          # ddof 0, not 2, 0, 8
    assert aggregate_rewards(S, "uwo").tolist() == [1.5, 2.0, -1.0]  # lambda 0.5
    assert aggregate_rewards(S, "uwo", lam=1.0).tolist() == [1.0, 2.0, -3.0]


def test_uwo_needs_two_members_and_finite_scores():
    with pytest.raises(EnsembleError, match="at least 2 members"):
        aggregate_rewards(S[:1], "uwo")
    assert aggregate_rewards(S[:1], "mean").tolist() == [1.0, 2.0, 3.0]
    bad = S.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(EnsembleError, match="member 1 scored sample 2"):
        aggregate_rewards(bad, "mean")
    with pytest.raises(EnsembleError, match="one of"):
        aggregate_rewards(S, "median")
    with pytest.raises(EnsembleError, match="shape"):
        aggregate_rewards(S[0], "mean")


def test_uncertainty_weights_and_first_batch_scale():
    var = torch.tensor([1.0, 0.0, 4.0])
    b = first_batch_scale(var, kl_coef=0.5)
    assert b == pytest.approx((5 / 3) / 0.5)
    scale, kl = uncertainty_weights(var, 2.0)
    assert scale.tolist() == pytest.approx([2 / 3, 1.0, 1 / 3])
    assert kl.tolist() == pytest.approx([0.5, 0.0, 2.0])
    with pytest.raises(EnsembleError, match="variance 0"):
        first_batch_scale(torch.zeros(3), kl_coef=0.5)
    with pytest.raises(EnsembleError, match="b must be > 0"):
        uncertainty_weights(var, 0.0)


def test_bradley_terry_loss_by_hand():
    chosen, rejected = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0])
    nll = (math.log(1 + math.exp(-1.0)) + math.log(2.0)) / 2          # 0.50320
    assert bradley_terry_loss(chosen, rejected).item() == pytest.approx(nll)
    # centering adds eta * (r+ + r-)^2 per pair: 0.1 * 1 and 0.1 * 0, averaged
    assert bradley_terry_loss(chosen, rejected, 0.1).item() == pytest.approx(nll + 0.05)
    with pytest.raises(ValueError, match="same shape"):
        bradley_terry_loss(chosen, rejected[:1])


def test_pairwise_accuracy_counts_ties_half():
    assert pairwise_accuracy(torch.tensor([2.0, 0.0, 1.0, 1.0]),
                             torch.tensor([1.0, 1.0, 1.0, 0.0])) == pytest.approx(2.5 / 4)


def test_first_batch_scale_needs_a_positive_kl_coefficient():
    with pytest.raises(EnsembleError, match="ppo.init_kl_coef must be > 0"):
        first_batch_scale(torch.tensor([1.0, 2.0]), kl_coef=0.0)
