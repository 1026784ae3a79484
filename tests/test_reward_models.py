"""Reward-model training, ensembles, synthetic labels and the ensemble methods inside PPO, on
tiny randomly initialised encoders with the real MiniLM tokenizer."""

import json
import random

import pytest
import torch

from riskalign.cli import main
from riskalign.reward_model.data import load_preferences
from riskalign.reward_model.synthetic import label_pairs
from riskalign.rewards.aggregate import EnsembleError
from riskalign.rewards.ensemble import EnsembleReward
from riskalign.rewards.shaping import EnsembleShaper

GOOD = ["great", "excellent", "helpful", "wonderful", "good", "effective"]
BAD = ["awful", "terrible", "useless", "bad", "horrible", "painful"]
FILL = ["the", "pill", "was", "really", "for", "me", "and", "my", "sleep", "doctor"]


def _answer(rng, words):
    body = rng.sample(FILL, 4) + [rng.choice(words)]
    rng.shuffle(body)
    return " " + " ".join(body)


def _pairs(n, seed):
    rng = random.Random(seed)
    return [{"prompt": "This medicine", "chosen": _answer(rng, GOOD), "rejected": _answer(rng, BAD)}
            for _ in range(n)]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def ensemble_dir(tiny_encoder_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("prefs")
    train, test = _write(d / "train.jsonl", _pairs(96, 0)), _write(d / "test.jsonl", _pairs(40, 1))
    out = d / "ensemble"
    assert main(["reward", f"data={train}", f"eval_data={test}", f"backbone={tiny_encoder_dir}",
                 "--ensemble", "2", "--output-dir", str(out), "epochs=3", "batch_size=8",
                 "learning_rate=3e-3", "max_length=32", "threads=2"]) == 0
    return out


def test_two_member_ensemble_beats_chance(ensemble_dir):
    manifest = json.loads((ensemble_dir / "manifest.json").read_text())
    members = manifest["members"]
    assert [m["seed"] for m in members] == [0, 1]
    for m in members:
        assert m["eval_accuracy"] > 0.75, m        # chance is 0.5 on 40 held-out pairs
        assert m["std"] > 0
        assert (ensemble_dir / m["path"] / "model.safetensors").is_file()
    from safetensors.torch import load_file

    a = load_file(str(ensemble_dir / "member-0" / "model.safetensors"))
    b = load_file(str(ensemble_dir / "member-1" / "model.safetensors"))
    assert any(not torch.equal(a[k], b[k]) for k in a)    # seeds differ -> members differ


def test_ensemble_reward_standardises_members(ensemble_dir):
    ens = EnsembleReward(ensemble_dir)
    assert len(ens) == 2
    rows = load_preferences(str(ensemble_dir.parent / "test.jsonl"))
    prompts = [r.prompt for r in rows] * 2
    answers = [r.chosen for r in rows] + [r.rejected for r in rows]
    scores = ens.members(prompts, answers)
    assert scores.shape == (2, 80)
    # the manifest's stats were taken on these same held-out texts: standardised -> mean 0, std 1
    assert scores.mean(1).abs().max() < 1e-4
    assert torch.allclose(scores.std(1, unbiased=False), torch.ones(2), atol=1e-4)
    assert torch.allclose(ens(prompts, answers), scores.mean(0))


def test_rerun_keeps_finished_members(ensemble_dir, tiny_encoder_dir, monkeypatch):
    import riskalign.reward_model.train as train_mod

    def fail(*a, **k):
        raise AssertionError("retrained")

    monkeypatch.setattr(train_mod, "train_member", fail)
    before = (ensemble_dir / "manifest.json").read_text()
    assert main(["reward", f"data={ensemble_dir.parent / 'train.jsonl'}",
                 f"eval_data={ensemble_dir.parent / 'test.jsonl'}",
                 f"backbone={tiny_encoder_dir}", "--ensemble", "2", "--output-dir",
                 str(ensemble_dir), "epochs=3", "batch_size=8", "learning_rate=3e-3",
                 "max_length=32"]) == 0
    assert json.loads(before)["members"] == json.loads(
        (ensemble_dir / "manifest.json").read_text())["members"]
    # other training settings: the members are retrained, not silently reused
    with pytest.raises(AssertionError, match="retrained"):
        main(["reward", f"data={ensemble_dir.parent / 'train.jsonl'}",
              f"eval_data={ensemble_dir.parent / 'test.jsonl'}", f"backbone={tiny_encoder_dir}",
              "--ensemble", "2", "--output-dir", str(ensemble_dir), "epochs=4", "batch_size=8",
              "learning_rate=3e-3", "max_length=32"])


@pytest.mark.parametrize("row, message", [
    ({"prompt": "p", "chosen": "same", "rejected": "same"}, "row 2: chosen and rejected are identical"),
    ({"prompt": "p", "chosen": "yes"}, "row 2: 'rejected' is missing or empty"),
    ({"prompt": "p", "chosen": " ", "rejected": "no"}, "row 2: 'chosen' is missing or empty"),
])
def test_bad_preference_rows_name_the_row(tmp_path, capsys, row, message):
    f = _write(tmp_path / "p.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "b"}, row])
    assert main(["reward", f"data={f}", "--output-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_empty_preference_file(tmp_path, capsys):
    f = tmp_path / "p.jsonl"
    f.write_text("")
    assert main(["reward", f"data={f}", "--output-dir", str(tmp_path / "o")]) == 2
    assert "empty" in capsys.readouterr().err


def test_manifest_without_stats_is_refused(ensemble_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(ensemble_dir, broken)
    m = json.loads((broken / "manifest.json").read_text())
    del m["members"][1]["std"]
    (broken / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="member 1 has no usable mean/std"):
        EnsembleReward(broken)


def test_label_pairs_by_hand():
    rows, ties = label_pairs(["p1", "p2", "p3"], ["a", "b", "c"], ["x", "y", "c"],
                             [0.5, -1.0, 0.0], [0.1, 2.0, 0.3], 0.0, random.Random(0))
    assert ties == 1                                   # p3: identical answers
    assert [(r.chosen, r.rejected) for r in rows] == [("a", "x"), ("y", "b")]
    swapped, _ = label_pairs(["p"], ["a"], ["x"], [1.0], [0.0], 0.5, random.Random(1))
    # random.Random(1).random() = 0.134 < 0.5: the label is flipped
    assert (swapped[0].chosen, swapped[0].rejected) == ("x", "a")


class FixedEnsemble:
    """Returns preset member scores [M, B], one tensor per call."""

    def __init__(self, *batches):
        self.batches = list(batches)
        self.m = batches[0].shape[0]

    def __len__(self):
        return self.m

    def members(self, prompts, completions):
        return self.batches.pop(0)


def test_adaptive_b_fixed_after_first_batch_and_saved():
    first = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, -1.0]])    # variance 1, 0, 4
    second = torch.tensor([[0.0, 0.0], [2.0, 0.0]])               # variance 1, 0
    shaper = EnsembleShaper(FixedEnsemble(first, second), "adaptive", lam=9.0, kl_coef=0.05)
    out = shaper(["p"] * 3, ["c"] * 3)
    b = (5 / 3) / 0.05                 # mean first-batch variance / the KL coefficient; lam unused
    assert shaper.b == pytest.approx(b)
    assert out.scores.tolist() == [2.0, 2.0, 1.0]
    assert out.weight.tolist() == pytest.approx([b / (b + 1), 1.0, b / (b + 4)])
    # the coefficient s2_i / b replaces 0.05: the factor on beta = 0.05 is s2_i / (0.05 b)
    assert (0.05 * out.kl_scale).tolist() == pytest.approx([1 / b, 0.0, 4 / b])
    assert (0.05 * out.kl_scale).mean().item() == pytest.approx(0.05)   # first batch: lambda
    out2 = shaper(["p"] * 2, ["c"] * 2)
    assert shaper.b == pytest.approx(b)                        # not re-estimated
    assert (0.05 * out2.kl_scale).tolist() == pytest.approx([1 / b, 0.0])
    restored = EnsembleShaper(FixedEnsemble(first), "adaptive")
    restored.load_state_dict(shaper.state_dict())
    assert restored.b == shaper.b


def test_other_methods_and_errors():
    s = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, -1.0]])
    assert EnsembleShaper(FixedEnsemble(s.clone()), "single", member=1)(
        ["p"] * 3, ["c"] * 3).scores.tolist() == [3.0, 2.0, -1.0]
    assert EnsembleShaper(FixedEnsemble(s.clone()), "min")(["p"] * 3, ["c"] * 3).scores.tolist() \
        == [1.0, 2.0, -1.0]
    out = EnsembleShaper(FixedEnsemble(s.clone()), "uwo")(["p"] * 3, ["c"] * 3)
    assert out.scores.tolist() == [1.5, 2.0, -1.0] and out.weight is None
    with pytest.raises(EnsembleError, match="undefined for an ensemble of 1 member"):
        EnsembleShaper(FixedEnsemble(s[:1]), "adaptive")
    with pytest.raises(EnsembleError, match="variance 0"):
        EnsembleShaper(FixedEnsemble(torch.ones(2, 3)), "adaptive")(["p"] * 3, ["c"] * 3)


def _ppo_cfg(model_dir, ensemble, out, method, *extra):
    from riskalign.config import load_config

    return load_config(None, [
        f"model.policy={model_dir}", f"output_dir={out}", "seed=5", "task.prompt_tokens=8",
        "task.new_tokens=6", "task.min_new_tokens=6", "task.max_train=32", "reward.kind=ensemble",
        f"reward.model={ensemble}", f"reward.ensemble_method={method}", "ppo.batch_size=8",
        "ppo.mini_batch_size=4", "ppo.forward_batch_size=8", "ppo.ppo_epochs=1",
        "ppo.learning_rate=1e-3", "log.tensorboard=false", "log.eval_prompts=0",
        "ppo.total_iterations=4", "log.checkpoint_every=2", *extra])


def test_ppo_with_adaptive_ensemble_resumes_exactly(tiny_model_dir, ensemble_dir, tmp_path):
    from riskalign.ppo.run import build_trainer

    full, _ = build_trainer(_ppo_cfg(tiny_model_dir, ensemble_dir, tmp_path / "a", "adaptive"))
    history = full.train()
    bs = {h["uncertainty_b"] for h in history}
    assert len(bs) == 1 and next(iter(bs)) > 0                   # b fixed after batch 1
    assert all(0 < h["uncertainty_weight_mean"] <= 1 for h in history)

    killed, _ = build_trainer(_ppo_cfg(tiny_model_dir, ensemble_dir, tmp_path / "b", "adaptive"))

    def kill(stats):
        if stats["iteration"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        killed.train(on_step=kill)
    resumed, _ = build_trainer(_ppo_cfg(tiny_model_dir, ensemble_dir, tmp_path / "b", "adaptive"))
    assert resumed.resume() and resumed.shaper.b == full.shaper.b
    resumed.train()
    for (n, p), q in zip(full.policy.named_parameters(), resumed.policy.parameters()):
        assert torch.equal(p, q), n


def test_ppo_ensemble_methods_compose_with_risk(tiny_model_dir, ensemble_dir, tmp_path):
    from riskalign.ppo.run import build_trainer

    for method in ("single", "mean", "min", "uwo"):
        t, _ = build_trainer(_ppo_cfg(tiny_model_dir, ensemble_dir, tmp_path / method, method,
                                      "ppo.total_iterations=2", "risk.alpha=0.5",
                                      "risk.warm_start=0", "risk.rho=0.5"))
        h = t.train()
        assert [x["kept"] for x in h] == [4, 4], method
    with pytest.raises(ValueError, match="reward.ensemble_method"):
        _ppo_cfg(tiny_model_dir, ensemble_dir, tmp_path / "x", "median")


def test_overopt_end_to_end_on_tiny_models(tiny_model_dir, tiny_encoder_dir, tmp_path):
    out = tmp_path / "overopt"
    args = ["overopt", "--output-dir", str(out), f"policy={tiny_model_dir}",
            "methods=[mean,adaptive]", "eval_every=1", "eval_prompts=4", "seeds=[0,1]",
            "kl_match_tries=1", "kl_tolerance=0.01",
            "prefs.train_pairs=24", "prefs.test_pairs=8", "prefs.reward.kind=python",
            "prefs.reward.function=easy_rewards:short_text", "prefs.task.new_tokens=6",
            "prefs.task.min_new_tokens=2", f"reward.backbone={tiny_encoder_dir}",
            "reward.ensemble=2", "reward.epochs=1", "reward.batch_size=8",
            "reward.learning_rate=1e-3", "reward.max_length=32", "rl.ppo.total_iterations=2",
            "rl.ppo.batch_size=4", "rl.ppo.mini_batch_size=2", "rl.ppo.forward_batch_size=4",
            "rl.task.new_tokens=6", "rl.task.min_new_tokens=6", "rl.log.tensorboard=false"]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"mean", "adaptive", "adaptive-kl-matched"}
    for r in results.values():
        assert {"best_gold", "final_gold", "final_proxy", "final_kl", "train_kl"} <= set(r)
        assert [c["iteration"] for c in r["curve"]] == [0, 1, 2] and r["seeds"] == [0, 1]
        assert r["curve"][0]["heldout_kl"] == pytest.approx(0.0, abs=1e-5)  # starting policy
    # every method starts from the same policy and held-out samples
    assert results["mean"]["start_gold"] == results["adaptive"]["start_gold"]
    d = results["adaptive"]["final_gold_minus_mean"]
    assert d["ci_low"] <= d["diff"] <= d["ci_high"]
    assert d["diff"] == pytest.approx(results["adaptive"]["final_gold"]
                                      - results["mean"]["final_gold"], abs=1e-9)
    assert d == results["adaptive"]["final_gold_versus"]["mean"]
    for r in results.values():
        lo, hi = r["final_gold_ci"]
        assert lo <= r["final_gold"] <= hi
    # the per-seed differences are the runs' own final gold per prompt, averaged by hand
    gold = {m: [json.loads((out / m / f"seed-{s}" / "final_probe.json").read_text())
                for s in (0, 1)] for m in ("mean", "adaptive")}
    for s in (0, 1):
        hand = sum(b - a for a, b in zip(gold["mean"][s], gold["adaptive"][s])) / 4
        assert d["by_seed"][s] == pytest.approx(hand, abs=1e-9)
    signs = {x > 0 for x in d["by_seed"] if x != 0}
    assert d["same_sign_every_seed"] == (len(signs) == 1 and 0 not in d["by_seed"])
    # two seeds: mean of the two differences -/+ t(0.975, 1 df) * sd / sqrt(2) = -/+ 12.706 * |d1 - d0| / 2
    half = 12.706205 * abs(d["by_seed"][1] - d["by_seed"][0]) / 2
    mid = sum(d["by_seed"]) / 2
    assert d["seed_ci_low"] == pytest.approx(mid - half, abs=1e-6)
    assert d["seed_ci_high"] == pytest.approx(mid + half, abs=1e-6)
    km = results["adaptive-kl-matched"]["final_gold_versus"]
    assert set(km) == {"mean", "adaptive"}
    assert km["adaptive"]["diff"] == pytest.approx(results["adaptive-kl-matched"]["final_gold"]
                                                   - results["adaptive"]["final_gold"], abs=1e-9)
    # the KL match rescaled adaptive's coefficient by the ratio of training KLs (one try)
    m, a = results["adaptive-kl-matched"], results["adaptive"]
    assert m["target_train_kl_by_seed"] == results["mean"]["train_kl_by_seed"]
    for coef, ka, km in zip(m["kl_coef_by_seed"], a["train_kl_by_seed"],
                            m["target_train_kl_by_seed"]):
        tried = 0.05 * min(10.0, max(0.1, ka / km))
        assert coef in (0.05, pytest.approx(tried))   # the try, or the first run if closer
    # every run tried is recorded: adaptive itself first, then the rescaled try (tolerance 1%)
    for s, tries in enumerate(m["tries_by_seed"]):
        assert tries[0] == {"kl_coef": 0.05, "train_kl": a["train_kl_by_seed"][s]}
        assert len(tries) <= 2 and m["train_kl_by_seed"][s] in [t["train_kl"] for t in tries]
    # on the first iteration every method applies the initial KL coefficient on average
    for method in ("mean", "adaptive"):
        for first, last in results[method]["kl_coef_applied_by_seed"]:
            assert first == pytest.approx(0.05, rel=1e-5) and last > 0
    report = (out / "report.md").read_text()
    held = len((out / "prefs/test.jsonl").read_text().splitlines())
    acc = [x["eval_accuracy"] for x in
           json.loads((out / "ensemble/manifest.json").read_text())["members"]]
    assert (f"Proxy pairwise accuracy on the {held} held-out gold-labelled pairs, per member: "
            + ", ".join(f"{x:.3f}" for x in acc)) in report
    assert "Every run tried" in report and "95% CI over seeds (t)" in report
    gaps = [a / b - 1 for a, b in zip(m["final_kl_by_seed"], results["mean"]["final_kl_by_seed"])]
    assert ("against `mean`'s, per seed: " + ", ".join(f"{g:+.0%}" for g in gaps)) in report
    for f in ("overopt_curves.png", "gold_vs_kl.png", "report.md", "prefs/train.jsonl",
              "ensemble/manifest.json", "mean/seed-1/final_probe.json"):
        assert (out / f).exists(), f


def test_members_with_different_tokenizers_are_refused(ensemble_dir, tiny_model_dir, tmp_path):
    import shutil
    from pathlib import Path

    mixed = tmp_path / "mixed"
    shutil.copytree(ensemble_dir, mixed)
    member = mixed / "member-1"
    for f in member.iterdir():
        if f.name.startswith(("tokenizer", "vocab", "special_tokens")):
            f.unlink()
    for f in Path(tiny_model_dir).iterdir():
        if f.name.startswith(("tokenizer", "vocab", "merges", "special_tokens")):
            shutil.copy(f, member / f.name)
    with pytest.raises(ValueError, match="member 1 uses a different tokenizer"):
        EnsembleReward(mixed)


def test_decoder_backbone_scores_at_the_last_real_token(tiny_model_dir):
    from riskalign.reward_model.model import load_reward_model, score_texts

    model, tok = load_reward_model(tiny_model_dir, seed=0)
    assert type(model).__name__ == "LlamaForSequenceClassification"
    texts = ["Good.", "This medicine helped me a lot and I would take it again."]
    together = score_texts(model, tok, texts, batch_size=2)     # the short one is right-padded
    alone = torch.cat([score_texts(model, tok, [t]) for t in texts])
    assert torch.allclose(together, alone, atol=1e-5)
    other, _ = load_reward_model(tiny_model_dir, seed=1)
    assert not torch.allclose(score_texts(other, tok, texts), together)  # head depends on seed


def test_adaptive_first_batch_matches_the_baselines_kl_coefficient(tiny_model_dir, ensemble_dir,
                                                                   tmp_path, monkeypatch):
    """Seed 003's parameterisation through the trainer: on the first batch the mean per-sample
    KL coefficient applied (kl_coef_mean) is the baselines' ppo.init_kl_coef, and each w_i is
    b / (b + s2_i) with b = mean(s2) / init_kl_coef, s2 recomputed here from the members."""
    import riskalign.rewards.shaping as shaping
    from riskalign.rewards.aggregate import member_variance
    from riskalign.ppo.run import build_trainer

    seen = {}
    real = shaping.EnsembleShaper.__call__

    def recording(self, prompts, completions):
        out = real(self, prompts, completions)
        if self.method == "adaptive":
            seen.setdefault("var", member_variance(self.ensemble.members(prompts, completions)))
            seen.setdefault("weight", out.weight)
        return out

    monkeypatch.setattr(shaping.EnsembleShaper, "__call__", recording)
    baseline, _ = build_trainer(_ppo_cfg(tiny_model_dir, ensemble_dir, tmp_path / "m", "mean",
                                         "ppo.init_kl_coef=0.07"))
    trainer, _ = build_trainer(_ppo_cfg(tiny_model_dir, ensemble_dir, tmp_path / "a",
                                        "adaptive", "ppo.init_kl_coef=0.07"))
    assert baseline.step()["kl_coef_mean"] == pytest.approx(0.07)
    stats = trainer.step()
    assert stats["kl_coef_mean"] == pytest.approx(0.07, rel=1e-5)
    b = seen["var"].mean().item() / 0.07
    assert stats["uncertainty_b"] == pytest.approx(b, rel=1e-5)
    assert seen["weight"].tolist() == pytest.approx((b / (b + seen["var"])).tolist(), rel=1e-5)
    assert stats["uncertainty_weight_mean"] > 0.9        # b >> s2: weights near 1, as in seed 003
