"""Paired bootstrap statistics of ``riskalign eval`` against hand computations."""

import pytest
import torch

from riskalign.eval import distinct_n, distinct_n_per_text
from riskalign.eval.paired import (compare, cvar_diff, mean_diff, paired_interval, paired_matrix,
                                   per_prompt, seed_interval, tail_mean_diff, threshold_diff,
                                   tail_win_rate, with_seed_interval)

A = torch.tensor([[0.0, 0.0, 0.0]], dtype=torch.float64)
B = torch.tensor([[1.0, 2.0, 6.0]], dtype=torch.float64)
SCORES = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
DRAWS = torch.tensor([[0, 0, 0], [0, 1, 2], [2, 2, 1], [1, 1, 1]])


def test_bootstrap_interval_by_hand():
    # resampled mean differences: 1, 3, (6 + 6 + 2) / 3, 2 -> sorted 1, 2, 3, 14/3;
    # percentile 2.5 at position 0.075 -> 1 + 0.075 * (2 - 1); 97.5 at 2.925 -> 3 + 0.925 * 5/3
    got = paired_interval(A, B, SCORES, mean_diff, DRAWS)
    assert got["diff"] == pytest.approx(3.0)
    assert got["ci_low"] == pytest.approx(1.075)
    assert got["ci_high"] == pytest.approx(3 + 0.925 * 5 / 3)


def test_seed_interval_by_hand():
    # d = 1, 2, 3: mean 2, sd 1, t(0.975, 2 df) = 4.302653 -> 2 -/+ 4.302653 / sqrt(3)
    lo, hi = seed_interval([1.0, 2.0, 3.0])
    assert (lo, hi) == (pytest.approx(2 - 2.484138, abs=1e-5), pytest.approx(2 + 2.484138, abs=1e-5))
    # two seeds, 0.5 and 1.5: sd sqrt(0.5), t(0.975, 1 df) = 12.706205 -> 1 -/+ 12.706205 * 0.5
    lo, hi = seed_interval([0.5, 1.5])
    assert (lo, hi) == (pytest.approx(1 - 6.353102, abs=1e-5), pytest.approx(1 + 6.353102, abs=1e-5))
    assert all(x != x for x in seed_interval([0.3]))  # one seed: no interval (nan)


def test_per_seed_statistics_and_their_interval():
    a = torch.zeros(2, 3, dtype=torch.float64)
    b = torch.tensor([[1.0, 2.0, 6.0], [3.0, 2.0, 1.0]], dtype=torch.float64)
    d = with_seed_interval(a, b, SCORES, mean_diff, DRAWS)
    assert d["by_seed"] == pytest.approx([3.0, 2.0]) and d["diff"] == pytest.approx(2.5)
    # 2.5 -/+ t(0.975, 1 df) * sd(3, 2) / sqrt(2) = 2.5 -/+ 12.706205 * 0.5
    assert d["seed_ci_low"] == pytest.approx(2.5 - 6.353102, abs=1e-5)
    assert d["seed_ci_high"] == pytest.approx(2.5 + 6.353102, abs=1e-5)
    # the tail is the worst 2 prompts by prompt score (0 and 1) on each seed: (1+2)/2, (3+2)/2
    t = with_seed_interval(a, b, SCORES, tail_mean_diff(34), DRAWS)
    assert t["by_seed"] == pytest.approx([1.5, 2.5])


def test_no_seed_interval_without_two_seeds_or_a_defined_statistic():
    one = with_seed_interval(A, B, SCORES, mean_diff, DRAWS)
    assert set(one) == {"diff", "ci_low", "ci_high"}            # one seed: no t interval
    a, b = torch.zeros(2, 3, dtype=torch.float64), torch.ones(2, 3, dtype=torch.float64)
    none = with_seed_interval(a, b, SCORES, threshold_diff(-1.0), DRAWS)   # no prompt <= -1
    assert none["by_seed"] == [None, None] and none["seed_ci_low"] is None


def test_tail_is_recomputed_on_each_resample():
    # worst 34% of 3 prompts = ceil(1.02) = 2 prompts by prompt score.
    stat = tail_mean_diff(34)
    assert stat(A, B, SCORES) == pytest.approx((1 + 2) / 2)
    d = DRAWS[2]  # prompts 2, 2, 1 with scores 2, 2, 1: the worst two are prompt 1 and the first 2
    assert stat(A[:, d], B[:, d], SCORES[d]) == pytest.approx((2 + 6) / 2)


def test_win_rate_counts_ties_half_and_cvar_by_hand():
    a = torch.tensor([[1.0, 5.0, 0.0], [2.0, 2.0, 2.0]], dtype=torch.float64)
    b = torch.tensor([[1.0, 4.0, 3.0], [3.0, 2.0, 0.0]], dtype=torch.float64)
    scores = torch.tensor([0.0, 1.0, 5.0], dtype=torch.float64)
    # worst 67% -> ceil(2.01) = 2 prompts (0 and 1); pairs: tie, loss, win, tie -> (0.5+0+1+0.5)/4
    assert tail_win_rate(67)(a, b, scores) == pytest.approx(0.5)
    # worst 33% -> ceil(0.99) = 1 prompt (0): tie, win
    assert tail_win_rate(33)(a, b, scores) == pytest.approx((0.5 + 1) / 2)
    # CVaR 0.33 = the lowest ceil(0.99) = 1 outcome per seed: seed 0: 1 - 0; seed 1: 0 - 2
    assert cvar_diff(0.33)(a, b, scores) == pytest.approx((1 + -2) / 2)


def test_pairing_follows_the_recorded_seed_not_the_order():
    """b = a + 1 on every (prompt, seed): the paired interval is exactly [1, 1], even though a
    varies widely across prompts and seeds and b's results are listed in another order."""
    g = torch.Generator().manual_seed(0)
    base = {s: (torch.randn(20, generator=g) * 5).tolist() for s in (3, 7, 11)}
    raws_a = [{"seed": s, "rewards": base[s]} for s in (3, 7, 11)]
    raws_b = [{"seed": s, "rewards": [x + 1 for x in base[s]]} for s in (11, 3, 7)]
    mats = {"a": paired_matrix(raws_a, [3, 7, 11], 20), "b": paired_matrix(raws_b, [3, 7, 11], 20)}
    scores = torch.randn(20, generator=g)
    res = compare(mats, "a", scores, [20.0], 0.0, 0.2, n_boot=200)["b"]
    for k in ("mean_reward", "tail_reward_q20", "cvar_reward"):
        assert res[k]["diff"] == pytest.approx(1.0)
        assert res[k]["ci_low"] == pytest.approx(1.0) and res[k]["ci_high"] == pytest.approx(1.0)
    assert res["tail_win_rate_q20"]["diff"] == 1.0
    # pairing by position instead (b's seed 11 against a's seed 3) loses comparisons
    wrong = {"a": mats["a"], "b": torch.stack([torch.tensor(r["rewards"]) for r in raws_b]).double()}
    bad = compare(wrong, "a", scores, [20.0], 0.0, 0.2, n_boot=200)["b"]
    assert bad["tail_win_rate_q20"]["diff"] < 0.9
    with pytest.raises(ValueError, match="seed 5"):
        paired_matrix(raws_a, [3, 5], 20)


def test_samples_per_prompt_are_averaged_prompt_major():
    assert per_prompt([1, 3, 10, 20], 2).tolist() == [2.0, 15.0]
    with pytest.raises(ValueError):
        per_prompt([1, 2, 3], 2)


def test_distinct_n_per_text_and_pooled_by_hand():
    texts = ["a b a b", "a a", ""]
    # per text, unigrams: {a, b} / 4 = 0.5 and {a} / 2 = 0.5; the empty text has none
    assert distinct_n_per_text(texts, 1) == pytest.approx(0.5)
    # bigrams: (a b), (b a), (a b) -> 2/3; (a a) -> 1/1; mean 5/6
    assert distinct_n_per_text(texts, 2) == pytest.approx((2 / 3 + 1) / 2)
    assert distinct_n(texts, 1) == pytest.approx(2 / 6)       # pooled: {a, b} / 6 words
    assert distinct_n_per_text(["x"], 2) == 0.0
