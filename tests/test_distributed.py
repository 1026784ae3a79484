"""Two processes through Accelerate (gloo on CPU) give the same training as one process with the
same global batch and seed.

Sampling is made deterministic (top_k = 1) so that both runs see the same completions; the global
batch is one minibatch, so both take the gradient of the same global token mean. What may differ
is float summation order (the gradient average across processes, whitening statistics), hence the
tolerance of 1e-4 on every weight after 3 iterations (the weights move by about 1e-2)."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from riskalign.cli import main

TESTS = str(Path(__file__).parent)
CONFIGS = Path(__file__).parent.parent / "configs" / "accelerate"


def _args(model_dir, *extra):
    return [f"model.policy={model_dir}", "seed=3", "task.prompt_tokens=8", "task.new_tokens=8",
            "task.min_new_tokens=8", "task.max_train=64", "reward.kind=python",
            "reward.function=easy_rewards:short_text", "ppo.learning_rate=3e-3",
            "ppo.batch_size=8", "ppo.mini_batch_size=8", "ppo.forward_batch_size=8",
            "ppo.ppo_epochs=1", "ppo.top_k=1", "ppo.total_iterations=3", "log.tensorboard=false",
            "log.eval_prompts=0", "threads=1", "precision=fp32", *extra]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_processes(args, out, command="ppo"):
    """``riskalign <command>`` on two CPU processes through the shipped Accelerate config."""
    launcher = Path(sys.executable).with_name("accelerate")
    if not launcher.exists():
        pytest.skip("accelerate launcher not installed")
    env = dict(os.environ, PYTHONPATH=TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [str(launcher), "launch", "--config_file", str(CONFIGS / "cpu-2proc.yaml"),
           "--main_process_port", str(_free_port()), "-m", "riskalign.cli", command,
           *args, f"output_dir={out}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def _max_change(a: dict, b: dict) -> float:
    """Largest absolute difference between the weights the two state dicts share."""
    return max((a[k] - b[k]).abs().max().item() for k in a if k in b)


def _metrics(out):
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("risk", [[], ["risk.alpha=0.5", "risk.warm_start=0", "risk.rho=0.5"]],
                         ids=["rlhf", "ra-rlhf"])
def test_two_processes_match_one(tiny_model_dir, tmp_path, monkeypatch, risk):
    monkeypatch.syspath_prepend(TESTS)
    args = _args(tiny_model_dir, *risk)
    assert main(["ppo", *args, f"output_dir={tmp_path / 'one'}"]) == 0
    _two_processes(args, tmp_path / "two")
    one, two = _metrics(tmp_path / "one"), _metrics(tmp_path / "two")
    assert [m["kept"] for m in one] == [m["kept"] for m in two]
    for a, b in zip(one, two):
        assert a["score_mean"] == pytest.approx(b["score_mean"], abs=1e-5)
        assert a["kl"] == pytest.approx(b["kl"], abs=1e-4)
        if risk:                                     # B0 and the threshold are global
            assert a["risk_b0"] == b["risk_b0"]
            assert a["risk_threshold"] == pytest.approx(b["risk_threshold"], abs=1e-4)
    if risk:
        assert one[-1]["kept"] == 4                  # ceil(0.5 * 8) of the global batch
    w1 = load_file(str(tmp_path / "one" / "final" / "model.safetensors"))
    w2 = load_file(str(tmp_path / "two" / "final" / "model.safetensors"))
    start = load_file(str(Path(tiny_model_dir) / "model.safetensors"))
    moved, diff = _max_change(w1, start), _max_change(w1, w2)
    assert moved > 1e-3 and diff < 1e-4, (moved, diff)
    shutil.rmtree(tmp_path)


def test_batch_must_split_evenly_across_processes(tiny_model_dir, tmp_path, monkeypatch):
    import riskalign.ppo.trainer as trainer_module
    from riskalign.config import load_config
    from riskalign.ppo.distributed import Dist
    from riskalign.ppo.run import build_trainer

    class ThreeProcesses(Dist):
        def __init__(self):
            super().__init__()
            self.world = 3

    monkeypatch.syspath_prepend(TESTS)
    monkeypatch.setattr(trainer_module, "Dist", ThreeProcesses)
    cfg = load_config(None, _args(tiny_model_dir, f"output_dir={tmp_path}"))
    with pytest.raises(ValueError, match=r"ppo.batch_size \(8\) must be divisible by the number "
                                         r"of processes \(3\)"):
        build_trainer(cfg)


def test_whitening_over_two_processes_equals_whitening_of_the_whole_batch():
    import threading

    import torch

    from riskalign.ppo.advantages import masked_whiten

    x = torch.tensor([[1.0, 2.0, 9.0], [4.0, 0.0, 0.0], [3.0, 5.0, 7.0], [2.0, 2.0, 6.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 1]])
    # one process, by hand: valid values 1 2 4 0 0 3 2 2 6, mean 20/9, unbiased variance
    # (sum of squares 74 - 9 * (20/9)^2) / 8
    mean, var = 20 / 9, (74 - 400 / 9) / 8
    expected = (x - mean) / (var + 1e-8) ** 0.5 * mask
    assert torch.allclose(masked_whiten(x, mask), expected, atol=1e-6)

    barrier, slots, out = threading.Barrier(2), [None, None], [None, None]

    def run(rank):  # each "process" holds two rows; reduce sums what both hold
        def reduce(t):
            slots[rank] = t.clone()
            barrier.wait()
            total = slots[0] + slots[1]
            barrier.wait()
            return total
        rows = slice(2 * rank, 2 * rank + 2)
        out[rank] = masked_whiten(x[rows], mask[rows], reduce=reduce)

    threads = [threading.Thread(target=run, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert torch.allclose(torch.cat(out), expected, atol=1e-6)


@pytest.mark.parametrize("name, kind", [("cpu-2proc", "MULTI_GPU"), ("deepspeed-zero2", "DEEPSPEED"),
                                        ("deepspeed-zero3", "DEEPSPEED"), ("fsdp", "FSDP")])
def test_shipped_accelerate_configs_load(name, kind):
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(CONFIGS / f"{name}.yaml"))
    assert str(cfg.distributed_type).endswith(kind) and cfg.num_processes >= 2


def test_other_commands_refuse_several_processes(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["prefs"]) == 2
    assert "only `ppo`, `sft` and `reward` run on several processes" in capsys.readouterr().err


def test_sft_on_two_processes_matches_one(tiny_model_dir, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(f"sample number {i} says {'yes ' * (i % 5)}and ends" for i in range(12)))
    args = [f"model.policy={tiny_model_dir}", f"text_file={texts}", "batch_size=4", "epochs=2",
            "learning_rate=1e-2", "max_tokens=16"]
    assert main(["sft", *args, f"output_dir={tmp_path / 'one'}"]) == 0
    _two_processes(args, tmp_path / "two", "sft")
    w1 = load_file(str(tmp_path / "one" / "model.safetensors"))
    w2 = load_file(str(tmp_path / "two" / "model.safetensors"))
    start = load_file(str(Path(tiny_model_dir) / "model.safetensors"))
    moved, diff = _max_change(w1, start), _max_change(w1, w2)
    assert moved > 1e-3 and diff < 1e-4, (moved, diff)


def test_reward_model_on_two_processes_matches_one(tiny_encoder_dir, tmp_path):
    """Dropout is switched off: its masks are drawn per process, so no equality could hold.
    Centering gives the head's bias a real gradient: without it the Bradley-Terry loss does not
    depend on the bias, Adam normalises the float noise of its zero gradient into steps of
    +-lr, and the bias alone would differ between the runs."""
    import random

    from transformers import AutoConfig, AutoModel, AutoTokenizer

    enc = tmp_path / "encoder"
    cfg = AutoConfig.from_pretrained(tiny_encoder_dir)
    cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = 0.0
    AutoModel.from_pretrained(tiny_encoder_dir, config=cfg).save_pretrained(str(enc))
    AutoTokenizer.from_pretrained(tiny_encoder_dir).save_pretrained(str(enc))

    rng = random.Random(0)
    good, bad = ["great", "helpful", "kind"], ["awful", "rude", "useless"]
    rows = [{"prompt": "It was", "chosen": f" {rng.choice(good)} and {i}",
             "rejected": f" {rng.choice(bad)} and {i}"} for i in range(22)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = [f"data={data}", f"backbone={enc}", "batch_size=6", "epochs=2",
            "learning_rate=1e-3", "max_length=16", "eval_fraction=0.1", "center_coef=0.1"]
    assert main(["reward", *args, f"output_dir={tmp_path / 'one'}"]) == 0
    _two_processes(args, tmp_path / "two", "reward")
    w1 = load_file(str(tmp_path / "one" / "member-0" / "model.safetensors"))
    w2 = load_file(str(tmp_path / "two" / "member-0" / "model.safetensors"))
    diff = _max_change(w1, w2)
    assert diff < 1e-4, diff
    m1 = json.loads((tmp_path / "one" / "manifest.json").read_text())["members"][0]
    m2 = json.loads((tmp_path / "two" / "manifest.json").read_text())["members"][0]
    assert m1["mean"] == pytest.approx(m2["mean"], abs=1e-4)
    start = load_file(str(enc / "model.safetensors"))
    moved = _max_change({"bert." + k: v for k, v in start.items()}, w1)
    assert moved > 1e-3, moved                                           # it did train
