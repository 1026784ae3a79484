"""RA-RLHF soft-risk schedule and tail selection against values worked out by hand."""

import math

import pytest
import torch

from riskalign import select_tail, soft_risk_batch_size


def test_schedule_boundaries_by_hand():
    # B 128, M 100, alpha 0.4, n 30, rho 0.95: ceil(rho M) = 95, K = 0.6 / 65
    f = lambda i: soft_risk_batch_size(i, 100, 128, 0.4, 30, 0.95)  # noqa: E731
    assert f(1) == 128 and f(30) == 128                      # i <= n
    assert f(31) == math.ceil(128 * (1 - 0.6 / 65))          # 126.8 -> 127
    assert f(31) == 127
    assert f(94) == math.ceil(128 * (1 - 0.6 * 64 / 65))     # 52.38 -> 53
    assert f(94) == 53
    assert f(95) == 52 and f(100) == 52                       # ceil(0.4 * 128) = ceil(51.2)


def test_schedule_exact_arithmetic_at_integer_points():
    # alpha 0.3, B 10: 0.3 * 10 is 3.0000000000000004 in floats; exact arithmetic gives 3
    assert soft_risk_batch_size(10, 10, 10, 0.3, 0, 1.0) == 3
    # in between: B 20, M 10, alpha 0.5, n 0, rho 1 -> K = 0.05; i=5 -> 20 * 0.75 = 15 exactly
    assert soft_risk_batch_size(5, 10, 20, 0.5, 0, 1.0) == 15


def test_alpha_one_keeps_everything_and_n_zero_starts_shrinking():
    assert all(soft_risk_batch_size(i, 50, 7, 1.0, 3, 0.9) == 7 for i in range(1, 51))
    # n = 0, B 7 (not divisible), M 10, alpha 0.2, rho 0.5 -> end 5, K = 0.16
    assert soft_risk_batch_size(1, 10, 7, 0.2, 0, 0.5) == math.ceil(7 * 0.84)  # 5.88 -> 6
    assert soft_risk_batch_size(4, 10, 7, 0.2, 0, 0.5) == 3  # 7 * 0.36 = 2.52 -> 3
    assert soft_risk_batch_size(5, 10, 7, 0.2, 0, 0.5) == 2  # ceil(1.4)


def test_schedule_rejects_bad_values():
    with pytest.raises(ValueError, match="risk.alpha"):
        soft_risk_batch_size(1, 10, 8, 0.0, 0, 0.5)


def test_select_tail_ties_go_to_earlier_index():
    r = torch.tensor([3.0, 1.0, 2.0, 1.0, 5.0, 1.0])
    assert select_tail(r, 2).tolist() == [1, 3]
    assert select_tail(r, 3).tolist() == [1, 3, 5]
    assert select_tail(r, 4).tolist() == [1, 2, 3, 5]
    assert select_tail(r, 6).tolist() == list(range(6))


def test_rank_by_gain_keeps_the_lowest_score_minus_prompt_score():
    """scores (0.5, 0.2, -0.1, 0.9), prompt scores (0.4, -0.5, -0.6, 0.0): gains (0.1, 0.7,
    0.5, 0.9), so B0 = 2 keeps 0 and 2; ranked by score it would keep 1 and 2."""
    from types import SimpleNamespace

    from riskalign import SoftRiskSelector

    starts = {"a": 0.4, "b": -0.5, "c": -0.6, "d": 0.0}
    ro = SimpleNamespace(prompts=list("abcd"), scores=torch.tensor([0.5, 0.2, -0.1, 0.9]))
    rewards = torch.zeros(4, 3)
    gain = SoftRiskSelector(0.5, 0, 0.5, "gain", 2,
                            lambda ps: torch.tensor([starts[p] for p in ps]))
    keep, stats = gain(2, ro, rewards, None)
    assert keep.tolist() == [0, 2]
    assert stats == {"risk_b0": 2, "risk_threshold": pytest.approx(0.5)}
    assert SoftRiskSelector(0.5, 0, 0.5, "score", 2)(2, ro, rewards, None)[0].tolist() == [1, 2]
    with pytest.raises(ValueError, match="gain"):
        SoftRiskSelector(0.5, 0, 0.5, "gain", 2)


def test_prompt_score_cache_scores_each_prompt_once():
    from riskalign.rewards import PromptScoreCache

    calls = []

    def source(prompts, completions):
        calls.append(list(prompts))
        assert completions == [""] * len(prompts)
        return torch.tensor([float(len(p)) for p in prompts])

    cache = PromptScoreCache(source)
    assert cache(["ab", "c", "ab"]).tolist() == [2.0, 1.0, 2.0]
    assert cache(["c", "def"]).tolist() == [1.0, 3.0]
    assert calls == [["ab", "c"], ["def"]]


def test_rank_by_gain_is_refused_where_the_prompt_score_means_nothing():
    """gain needs a plain reward source scoring prompt + completion: with target 'completion'
    every prompt alone scores the same, and an ensemble's shaped score is not its source's."""
    from riskalign.config import ConfigError, load_config
    from riskalign.rewards.shaping import EnsembleShaper
    from riskalign.risk import soft_risk as risk_selector

    with pytest.raises(ConfigError, match="risk.rank_by must be kl_return or score when"):
        load_config(None, ["risk.rank_by=gain", "reward.target=completion"])
    cfg = load_config(None, ["risk.rank_by=gain", "risk.alpha=0.5", "ppo.total_iterations=4"])
    assert risk_selector(cfg, 256, lambda p, c: torch.zeros(len(p))).rank_by == "gain"
    for reward in (None, EnsembleShaper(lambda p, c: torch.zeros(2, len(p)), "min")):
        with pytest.raises(ConfigError, match="needs a plain reward source"):
            risk_selector(cfg, 256, reward)
