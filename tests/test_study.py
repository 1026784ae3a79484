"""`riskalign study ra-rlhf` end to end on a tiny model: runs, paired report, resuming."""

import json

import pytest

from riskalign.cli import main


def _args(tiny, out):
    return ["study", "ra-rlhf", "--output-dir", str(out), "seeds=[0,1]", f"sft.model.policy={tiny}",
            "sft.max_texts=8", "sft.batch_size=4", "sft.max_tokens=16",
            "rl.ppo.total_iterations=4", "rl.ppo.batch_size=4", "rl.ppo.mini_batch_size=2",
            "rl.ppo.forward_batch_size=4", "rl.task.new_tokens=4", "rl.task.min_new_tokens=4",
            "rl.task.validation=6", "rl.log.tensorboard=false", "risk.warm_start=1",
            "risk.rho=0.75", "risk.alpha=0.5", "eval.task.validation=6", "eval.task.max_eval=10",
            "eval.task.new_tokens=4", "eval.task.min_new_tokens=4", "eval.reference_texts=3",
            "eval.bootstrap=200", "eval.split=validation", "variants.kept=[ppo.minibatches=kept]"]


def test_study_runs_reports_and_resumes(tiny_model_dir, tmp_path, monkeypatch):
    out = tmp_path / "study"
    assert main(_args(tiny_model_dir, out)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"rlhf", "ra-rlhf", "kept", "sft", "paired"}
    paired = metrics["paired"]
    assert paired["baseline"] == "rlhf" and paired["n_seeds"] == 2 and paired["n_prompts"] == 6
    for method in ("ra-rlhf", "kept"):
        for key in ("tail_reward_q20", "mean_reward"):
            d = paired["models"][method][key]
            assert d["ci_low"] <= d["diff"] <= d["ci_high"]
    ra = [json.loads(x) for x in (out / "logs/ra-rlhf-seed1.jsonl").read_text().splitlines()]
    assert [r["kept"] for r in ra] == [4, 3, 2, 2]   # B0: B=4, alpha 0.5, n=1, ceil(0.75*4)=3
    assert all("tail_score" in r for r in ra)
    status = (out / "status.md").read_text()
    assert "| ra-rlhf seed 1 | done |" in status and "| 1 | " in status   # seed 1's difference
    for f in ("report.md", "tail_during_training.png", "quantile_curve.png", "study.json",
              "raw/sft-seed0.json", "raw/ra-rlhf-seed1.json"):
        assert (out / f).exists(), f
    report = (out / "report.md").read_text()
    assert "RA-RLHF minus RLHF" in report and "Paired differences against `rlhf`" in report
    assert "Variant `kept` minus RLHF" in report and "`ppo.minibatches=kept`" in report
    # the verdict adds the interval over the two training seeds, from the per-seed differences
    d = paired["models"]["ra-rlhf"]["mean_reward"]
    half, mid = 12.706205 * abs(d["by_seed"][1] - d["by_seed"][0]) / 2, sum(d["by_seed"]) / 2
    assert d["seed_ci_low"] == pytest.approx(mid - half, abs=1e-6)   # t(0.975, 1 df) by hand
    assert d["seed_ci_high"] == pytest.approx(mid + half, abs=1e-6)
    assert f"[{d['seed_ci_low']:+.3f}, {d['seed_ci_high']:+.3f}]" in report
    assert "Over the 2 training seeds" in report and "Over the 2 seeds" in report
    # diagnostics: iteration 4 only (the last quarter of 4), e.g. the entropy logged there
    row = next(x for x in report.splitlines() if x.startswith("| ra-rlhf seed 1 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[2]) == pytest.approx(ra[-1]["entropy"], abs=5e-4)
    assert float(cells[-1]) == pytest.approx(
        json.loads((out / "raw/ra-rlhf-seed1.json").read_text())["ppl_reference"], abs=0.05)
    kept = json.loads((out / "work/kept-seed0/config.json").read_text())
    assert kept["ppo"]["minibatches"] == "kept" and kept["risk"]["alpha"] == 0.5
    # the evaluation used the validation prompts, which training never saw
    raw = json.loads((out / "raw/rlhf-seed0.json").read_text())
    assert len(raw["rewards"]) == 6

    # a second invocation finds every run done and trains nothing
    import riskalign.commands.study as study_mod

    def fail(*a, **k):
        raise AssertionError("trained again")

    monkeypatch.setattr(study_mod, "run_ppo", fail)
    monkeypatch.setattr(study_mod, "run_sft", fail)
    assert main(_args(tiny_model_dir, out)) == 0
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert len(json.loads((out / "study.json").read_text())["invocation_seconds"]) == 2
    # a finished study without work/ (not kept with a report) rebuilds its report, trains nothing
    import shutil

    shutil.rmtree(out / "work")
    assert main(_args(tiny_model_dir, out)) == 0
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert not (out / "work" / "sft").exists()


def test_study_refuses_other_settings_in_the_same_folder(tmp_path):
    from riskalign.config import ConfigError, load_config
    from riskalign.commands.study import StudyConfig, _check_same_study, _settings

    out = tmp_path / "s"
    out.mkdir()
    cfg = load_config(None, ["precision=fp32"], cls=StudyConfig)
    (out / "study.json").write_text(json.dumps({"settings": _settings(cfg)}))
    _check_same_study(out, cfg)                       # same settings: fine
    other = load_config(None, ["precision=fp32", "risk.alpha=0.2"], cls=StudyConfig)
    import pytest

    with pytest.raises(ConfigError, match="'risk.alpha' differs"):
        _check_same_study(out, other)


def test_variants_are_checked_and_may_grow_but_not_change(tmp_path):
    import pytest

    from riskalign.config import ConfigError, load_config
    from riskalign.commands.study import StudyConfig, _check_same_study, _settings, run_config

    def cfg(*extra):
        return load_config(None, ["precision=fp32", *extra], cls=StudyConfig)

    gain = cfg("variants.gain=[risk.rank_by=gain, risk.warm_start=20]")
    rl = run_config(gain, "gain", 1)
    assert (rl.risk.rank_by, rl.risk.warm_start, rl.risk.alpha, rl.seed) == ("gain", 20, 0.4, 1)
    assert run_config(gain, "rlhf", 1).risk.alpha == 1.0
    assert run_config(cfg("variants.r=[model.reference=smollm2-135m]"), "r", 0).model.reference
    for bad, msg in (("variants.x=[seed=3]", "variants.x must be free of seed"),
                     ("variants.x=[task.name=imdb]", "variants.x must be free of"),
                     ("variants.x=[risk.alpha=1]", "variants.x: risk.alpha must be < 1"),
                     ("variants.x=[risk.rank_by=best]", "variants.x: risk.rank_by must be"),
                     ("variants.x=[]", "variants.x must be a non-empty list"),
                     ('variants.x=["ppo={}"]', "variants.x must be overrides of single settings"),
                     ("variants.x=[ppo.nope=1]", "variants.x must be overrides of single"),
                     ("variants.sft=[risk.alpha=0.5]", "variants must be named"),
                     ("variants.ra-rlhf=[risk.rank_by=gain]", "variants must be named")):
        with pytest.raises(ConfigError, match=msg):
            cfg(bad)

    out = tmp_path / "s"
    out.mkdir()
    plain = cfg()
    saved = _settings(plain)
    del saved["rl"]["ppo"]["whiten_over"]          # a study begun before the setting existed
    (out / "study.json").write_text(json.dumps({"settings": saved}))
    _check_same_study(out, gain)                    # a variant may be added
    (out / "study.json").write_text(json.dumps({"settings": saved,
                                                "variants": gain.variants}))
    with pytest.raises(ConfigError, match="holds variant 'gain'"):
        _check_same_study(out, cfg("variants.gain=[risk.rank_by=gain]"))
    with pytest.raises(ConfigError, match="'rl.ppo.whiten_over' differs"):
        _check_same_study(out, cfg("rl.ppo.whiten_over=batch"))
