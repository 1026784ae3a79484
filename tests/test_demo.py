"""`riskalign demo` end to end on a tiny model: every stage, the report, and resuming."""

import json

from riskalign.cli import main


def _args(tiny, out):
    return ["demo", "--output-dir", str(out), "--seeds", "2", f"base={tiny}",
            "sft.max_texts=8", "sft.batch_size=4", "sft.max_tokens=16",
            "rl.ppo.total_iterations=3", "rl.ppo.batch_size=4", "rl.ppo.mini_batch_size=2",
            "rl.ppo.forward_batch_size=4", "rl.task.new_tokens=4", "rl.task.min_new_tokens=4",
            "rl.log.tensorboard=false", "risk.warm_start=1", "risk.rho=1.0", "risk.alpha=0.5",
            "eval.task.max_eval=10", "eval.task.new_tokens=4", "eval.task.min_new_tokens=4",
            "eval.reference_texts=3"]


def test_demo_runs_every_stage_and_resumes(tiny_model_dir, tmp_path, monkeypatch):
    out = tmp_path / "demo"
    assert main(_args(tiny_model_dir, out)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["base", "sft", "rlhf", "ra-rlhf", "paired"]
    assert all("tail_reward_q20_std" in metrics[m] for m in ("base", "sft", "rlhf", "ra-rlhf"))
    assert metrics["paired"]["baseline"] == "rlhf"          # RA-RLHF is judged against RLHF
    assert "tail_reward_q20" in metrics["paired"]["models"]["ra-rlhf"]
    for f in ("report.md", "quantile_curve.png", "reward_histograms.png", "training_curves.png",
              "demo.json", "sft/model.safetensors"):
        assert (out / f).exists(), f
    ra = [json.loads(x) for x in (out / "ra-rlhf/seed-1/metrics.jsonl").read_text().splitlines()]
    assert [r["kept"] for r in ra] == [4, 3, 2]      # B0 for B=4, alpha 0.5, n=1, M=3, rho 1
    rl = [json.loads(x) for x in (out / "rlhf/seed-1/metrics.jsonl").read_text().splitlines()]
    assert [r["kept"] for r in rl] == [4, 4, 4]
    assert "How the models were trained" in (out / "report.md").read_text()

    # a second run finds every stage done and trains nothing
    import riskalign.commands.demo as demo_mod

    def fail(*a, **k):
        raise AssertionError("trained again")

    monkeypatch.setattr(demo_mod, "run_ppo", fail)
    monkeypatch.setattr(demo_mod, "run_sft", fail)
    assert main(_args(tiny_model_dir, out)) == 0
    assert json.loads((out / "metrics.json").read_text()) == metrics


def test_partial_override_keeps_the_sections_own_defaults():
    from riskalign.config import load_config
    from riskalign.commands.demo import DemoConfig
    from riskalign.commands.eval import EvalConfig

    cfg = load_config(None, ["rl.ppo.total_iterations=20", "eval.task.new_tokens=8"],
                      cls=DemoConfig)
    assert cfg.rl.ppo.total_iterations == 20
    assert cfg.rl.model.lora.enabled and cfg.rl.ppo.learning_rate == 1e-3   # demo preset kept
    assert cfg.rl.ppo.batch_size == 16 and cfg.rl.log.eval_prompts == 0
    assert cfg.eval.task.new_tokens == 8 and cfg.eval.task.max_eval == 128
    assert load_config(None, ["task.new_tokens=8"], cls=EvalConfig).task.max_eval == 128
