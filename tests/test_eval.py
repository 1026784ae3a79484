"""Evaluation metrics against hand-computed values, perplexity against a direct forward pass,
and `riskalign eval` end to end on a tiny model."""

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from riskalign.cli import main
from riskalign.eval import (across_seeds, cvar, distinct_n, mean_std, quantile_curve, tail_count,
                            threshold_reward, worst_prompts_reward)
from riskalign.eval.perplexity import generation_perplexity, reference_perplexity, sliding_windows

R = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
S = torch.tensor([0.5, -1.0, 0.2, -1.0, 3.0])  # prompt scores; a tie at -1 (prompts 1 and 3)


def test_tail_count_rounds_up_and_keeps_one():
    assert tail_count(10, 0.2) == 2
    assert tail_count(7, 0.2) == 2        # ceil(1.4)
    assert tail_count(5, 0.05) == 1       # ceil(0.25)
    assert tail_count(10, 0.3) == 3       # 0.3 * 10 = 3.0000000000000004 in floats
    with pytest.raises(ValueError):
        tail_count(5, 0)


def test_worst_prompts_reward_by_prompt_score_ties_to_earlier():
    assert worst_prompts_reward(R, S, 40) == pytest.approx((2 + 4) / 2)
    assert worst_prompts_reward(R, S, 20) == pytest.approx(2.0)   # tie -> prompt 1, not 3
    assert worst_prompts_reward(R, S, 60) == pytest.approx((2 + 4 + 3) / 3)
    assert worst_prompts_reward(R, S, 100) == pytest.approx(3.0)


def test_threshold_reward():
    assert threshold_reward(R, S, 0.2) == (pytest.approx(3.0), 3)
    mean, n = threshold_reward(R, S, -5.0)
    assert math.isnan(mean) and n == 0


def test_cvar_of_outcomes():
    v = torch.tensor([3.0, -1.0, 2.0, 0.0, 5.0])
    assert cvar(v, 0.4) == pytest.approx(-0.5)
    assert cvar(v, 0.1) == pytest.approx(-1.0)
    assert cvar(v, 1.0) == pytest.approx(1.8)


def test_quantile_curve_matches_worst_prompts_reward():
    assert quantile_curve(R, S, [20, 40, 60, 100]) == pytest.approx([2.0, 3.0, 3.0, 3.0])
    curve = quantile_curve(R, S)
    assert len(curve) == 100
    assert all(curve[q - 1] == pytest.approx(worst_prompts_reward(R, S, q)) for q in (7, 33, 81))


def test_distinct_n():
    texts = ["a b a", "A b"]
    assert distinct_n(texts, 1) == pytest.approx(2 / 5)
    assert distinct_n(texts, 2) == pytest.approx(2 / 3)    # (a b), (b a), (a b)
    assert distinct_n(texts, 3) == pytest.approx(1.0)      # only (a b a)
    assert distinct_n(["a"], 2) == 0.0


def test_mean_std_and_across_seeds():
    assert mean_std([1.0, 2.0, 3.0]) == (pytest.approx(2.0), pytest.approx(1.0))
    assert mean_std([5.0]) == (5.0, 0.0)
    merged = across_seeds([{"x": 1.0}, {"x": 3.0}])
    assert merged == {"x": 2.0, "x_std": pytest.approx(math.sqrt(2))}
    assert across_seeds([{"x": 1.0}]) == {"x": 1.0}


def test_sliding_windows_score_each_token_once():
    ids = list(range(10))
    segs = sliding_windows(ids, window=4, stride=2)
    assert [s for s, _ in segs] == [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9]]
    assert [f for _, f in segs] == [0, 2, 2, 2]
    scored = [s[t] for s, f in segs for t in range(max(1, f), len(s))]
    assert scored == list(range(1, 10))
    assert sliding_windows([1, 2, 3], window=8, stride=4) == [([1, 2, 3], 0)]
    with pytest.raises(ValueError):        # stride == window would skip each later first token
        sliding_windows(ids, window=4, stride=4)


def _direct_nll(lm, ids: list[int], start: int) -> list[float]:
    with torch.no_grad():
        logits = lm(input_ids=torch.tensor([ids])).logits[0, :-1].float()
    logp = torch.log_softmax(logits, -1)
    return [-logp[t - 1, ids[t]].item() for t in range(max(1, start), len(ids))]


def test_perplexities_match_a_direct_forward(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    lm = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    texts = ["The tablets helped a lot and I sleep well.", "Great."]
    nll = [x for t in texts for x in _direct_nll(lm, tok(t, add_special_tokens=False).input_ids, 1)]
    expected = math.exp(sum(nll) / len(nll))
    assert reference_perplexity(lm, tok, texts, window=64, stride=32) == pytest.approx(expected,
                                                                                      rel=1e-4)
    # with a window shorter than the text, tokens see less context: a different (finite) value
    short = reference_perplexity(lm, tok, texts, window=4, stride=2)
    assert math.isfinite(short) and short != pytest.approx(expected, rel=1e-6)

    prompts, completions = ["I took it", "Side effects"], [" and felt fine.", " were mild"]
    nll = []
    for p, c in zip(prompts, completions):
        p_ids = tok(p, add_special_tokens=False).input_ids
        nll += _direct_nll(lm, p_ids + tok(c, add_special_tokens=False).input_ids, len(p_ids))
    assert generation_perplexity(lm, tok, prompts, completions) == pytest.approx(
        math.exp(sum(nll) / len(nll)), rel=1e-4)


def test_eval_cli_end_to_end(tiny_model_dir, tmp_path, monkeypatch):
    out = tmp_path / "ev"
    args = ["eval", "--model", f"a={tiny_model_dir}", "--model", f"b={tiny_model_dir}",
            "--seeds", "0", "1", "--output-dir", str(out), "task.max_eval=12",
            "task.new_tokens=6", "reference_texts=4", "batch_size=5"]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"a", "b", "paired"}
    for key in ("mean_reward", "tail_reward_q20", "distinct_1_per_text", "distinct_2_pooled",
                "distinct_3_per_text", "mean_reward_std", "tail_reward_q20_std", "cvar_reward",
                "ppl_reference", "ppl_generations", "tail_reward_threshold"):
        assert key in metrics["a"], key
    assert metrics["a"] == metrics["b"]          # same weights, same seeds, same prompts
    paired = metrics["paired"]
    assert paired["baseline"] == "a" and paired["n_prompts"] == 12 and paired["n_seeds"] == 2
    b = paired["models"]["b"]                    # paired per prompt and seed: exactly no change
    assert b["mean_reward"] == {"diff": 0.0, "ci_low": 0.0, "ci_high": 0.0, "by_seed": [0.0, 0.0],
                                "seed_ci_low": 0.0, "seed_ci_high": 0.0}
    assert b["tail_reward_q20"]["diff"] == 0.0 and b["tail_win_rate_q20"]["diff"] == 0.5
    assert "Paired differences against `a`" in (out / "report.md").read_text()
    raw0 = json.loads((out / "raw" / "a-seed0.json").read_text())
    raw1 = json.loads((out / "raw" / "a-seed1.json").read_text())
    assert len(raw0["completions"]) == 12 and raw0["completions"] != raw1["completions"]
    for f in ("report.md", "quantile_curve.png", "reward_histograms.png"):
        assert (out / f).stat().st_size > 0
    assert "worst 20% prompts" in (out / "report.md").read_text()

    # a rerun reads the cache instead of generating again
    import riskalign.commands.eval as run_mod

    def fail(*a, **k):
        raise AssertionError("generated again")

    monkeypatch.setattr(run_mod, "_raw_result", fail)
    assert main(args) == 0
    assert json.loads((out / "metrics.json").read_text()) == metrics


def test_eval_cache_notices_a_retrained_model(tiny_model_dir, tmp_path, monkeypatch):
    import os
    import shutil

    import riskalign.commands.eval as run_mod

    model = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model)
    args = ["eval", "--model", f"a={model}", "--output-dir", str(tmp_path / "ev"),
            "task.max_eval=4", "task.new_tokens=4", "reference_texts=2"]
    calls = []
    real = run_mod._raw_result
    monkeypatch.setattr(run_mod, "_raw_result", lambda *a: calls.append(1) or real(*a))
    assert main(args) == 0 and main(args) == 0
    assert len(calls) == 1                                   # second run: from the cache
    weights = model / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert main(args) == 0
    assert len(calls) == 2                                   # weights rewritten: evaluated again


def test_eval_bad_model_spec_is_one_line_error(tmp_path, capsys):
    assert main(["eval", "--model", "nopath", "--output-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "models" in err and len(err.strip().splitlines()) == 1
    assert main(["eval", "--output-dir", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_samples_per_prompt_average_per_prompt(tiny_model_dir, tmp_path):
    """Two completions per prompt and seed: raw results hold 2N rewards, prompt-major, and the
    metrics use each prompt's mean."""
    out = tmp_path / "ev"
    assert main(["eval", "--model", f"a={tiny_model_dir}", "--output-dir", str(out),
                 "task.max_eval=5", "task.new_tokens=4", "task.min_new_tokens=4",
                 "reference_texts=0", "samples_per_prompt=2", "bootstrap=100"]) == 0
    raw = json.loads((out / "raw" / "a-seed0.json").read_text())
    assert len(raw["rewards"]) == len(raw["completions"]) == 10
    means = [(raw["rewards"][2 * i] + raw["rewards"][2 * i + 1]) / 2 for i in range(5)]
    metrics = json.loads((out / "metrics.json").read_text())["a"]
    assert metrics["mean_reward"] == pytest.approx(sum(means) / 5, abs=1e-6)
    assert "2 completion(s) per prompt" in (out / "report.md").read_text()
