"""The KL match of ``riskalign overopt``: which initial KL coefficients it tries, by hand."""

import math

import pytest

from riskalign.commands import overopt
from riskalign.commands.overopt import OveroptConfig, _kl_matched, _next_kl_coef


def run(coef: float, kl: float) -> dict:
    return {"kl_coef": coef, "train_kl": kl}


def test_scales_by_the_kl_ratio_until_the_target_is_bracketed():
    assert _next_kl_coef([run(0.05, 40.0)], 10.0) == pytest.approx(0.2)
    assert _next_kl_coef([run(0.05, 40.0), run(0.2, 15.0)], 10.0) == pytest.approx(0.3)
    assert _next_kl_coef([run(0.05, 1000.0)], 10.0) == pytest.approx(0.5)    # clamped at 10x
    assert _next_kl_coef([run(0.05, 0.5)], 10.0) == pytest.approx(0.005)     # and at 0.1x


def test_interpolates_on_a_log_log_line_once_bracketed():
    # log c = log 0.05 + ln(10/40) / ln(5/40) * ln(0.2/0.05) = log(0.05 * 4 ** (2/3))
    assert _next_kl_coef([run(0.05, 40.0), run(0.2, 5.0)], 10.0) == pytest.approx(
        0.05 * 4 ** (2 / 3))
    # the nearest run on each side is used, whatever the order the runs came in
    tried = [run(0.05, 40.0), run(0.4, 2.0), run(0.1, 20.0), run(0.2, 5.0)]
    assert _next_kl_coef(tried, 10.0) == pytest.approx(0.1 * 2 ** (math.log(2) / math.log(4)))
    # a non-positive KL never counts as "below": the last run is scaled (clamped at 0.1x)
    assert _next_kl_coef([run(0.05, 40.0), run(0.2, 0.0)], 10.0) == pytest.approx(0.02)


def test_stops_within_tolerance_and_keeps_the_closest(monkeypatch):
    calls = []

    def fake_run(cfg, out, name, method, seed, coef, probe, start):
        calls.append((name, coef))
        return run(coef, 40.0 * (0.05 / coef) ** 0.7)

    monkeypatch.setattr(overopt, "_run", fake_run)
    cfg = OveroptConfig(kl_tolerance=0.05, kl_match_tries=4)
    got = _kl_matched(cfg, None, 1, run(0.05, 40.0), 10.0, None, None)
    c1 = 0.05 * 4.0                                   # 40 / 10
    kl1 = 40.0 * (0.05 / c1) ** 0.7                   # 15.16: still above
    c2 = c1 * kl1 / 10.0
    kl2 = 40.0 * (0.05 / c2) ** 0.7                   # 11.34: 13% off, outside 5%
    c3 = c2 * kl2 / 10.0
    assert [c for _, c in calls] == pytest.approx([c1, c2, c3])
    assert [n for n, _ in calls] == [f"adaptive-kl-matched/try-{k}" for k in (1, 2, 3)]
    assert got["kl_coef"] == pytest.approx(c3) and got["matched"]    # 10.37: within 5%
    assert got["target_train_kl"] == 10.0

    calls.clear()
    got = _kl_matched(OveroptConfig(kl_tolerance=0.01, kl_match_tries=1), None, 1,
                      run(0.05, 40.0), 10.0, None, None)
    assert len(calls) == 1 and not got["matched"] and got["kl_coef"] == pytest.approx(c1)


def test_a_folder_takes_more_kl_match_tries_but_not_other_settings(tmp_path):
    from riskalign.commands.overopt import _check_settings
    from riskalign.config import ConfigError

    _check_settings(tmp_path, OveroptConfig(kl_match_tries=3, precision="fp32"))
    _check_settings(tmp_path, OveroptConfig(kl_match_tries=4, seeds=[0, 1, 2, 3],
                                            precision="fp32"))
    with pytest.raises(ConfigError, match="'kl_tolerance' differs"):
        _check_settings(tmp_path, OveroptConfig(kl_tolerance=0.1, precision="fp32"))
