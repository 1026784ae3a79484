"""A PPO run killed with SIGKILL at several moments, some inside a checkpoint write, resumes to
the same final weights as an uninterrupted run, and leaves no checkpoint that fails to load."""

import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from riskalign.cli import main
from riskalign.ppo.checkpoint import verify_checksums

TESTS = Path(__file__).parent


def test_killed_at_several_moments_resumes_exactly(tiny_model_dir, tmp_path, monkeypatch):
    args = ["ppo", f"model.policy={tiny_model_dir}", "seed=3", "threads=2", "precision=fp32",
            "task.prompt_tokens=8", "task.new_tokens=8", "task.min_new_tokens=8",
            "task.max_train=64", "reward.kind=python", "reward.function=easy_rewards:short_text",
            "ppo.learning_rate=3e-3", "ppo.batch_size=8", "ppo.mini_batch_size=4",
            "ppo.forward_batch_size=8", "ppo.ppo_epochs=2", "ppo.total_iterations=4",
            "log.tensorboard=false", "log.eval_prompts=0", "log.checkpoint_every=1"]
    monkeypatch.chdir(TESTS)  # easy_rewards is found in the working directory
    assert main([*args, f"output_dir={tmp_path / 'whole'}"]) == 0
    run = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    # killed inside the 2nd checkpoint write; then mid-line of iteration 3's log; then with
    # iteration 3's checkpoint in place but not yet named latest
    for k, moment in enumerate(["checkpoint-write:2", "log-line:3", "before-latest:1"]):
        p = subprocess.run([sys.executable, str(TESTS / "kill_run.py"), moment, *args,
                            f"output_dir={run}", *(["--resume"] if k else [])],
                           cwd=TESTS, env=env, capture_output=True, text=True, timeout=600)
        assert p.returncode == -9, p.stderr[-2000:]
        if k == 0:  # a half-written checkpoint is left behind, the complete one named latest
            temps = [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
            assert temps and (run / "checkpoints" / "latest").read_text() == "iter-000001"
    assert main([*args, f"output_dir={run}", "--resume"]) == 0
    whole = load_file(str(tmp_path / "whole" / "final" / "model.safetensors"))
    resumed = load_file(str(run / "final" / "model.safetensors"))
    assert whole.keys() == resumed.keys()
    for k in whole:
        assert torch.equal(whole[k], resumed[k]), k
    logged = [ln for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [int(ln.split('"iteration": ')[1].split(",")[0]) for ln in logged] == [1, 2, 3, 4]
    entries = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert entries == ["iter-000004", "latest"]  # temps removed, older ones pruned
    for ck in (run / "checkpoints").glob("iter-*"):
        verify_checksums(ck)
        load_file(str(ck / "trainable.safetensors"))
        torch.load(ck / "state.pt", weights_only=True)
