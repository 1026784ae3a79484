"""The public Python API: examples end to end, custom plug-ins, registries, no import cycle, the
hub left reachable, and Weights & Biases logging."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import riskalign
from riskalign import RewardShaper, ShapedReward, presets

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).parent


def tiny_config(out, iterations=2):
    cfg = presets.cpu_run()
    cfg.output_dir, cfg.ppo.total_iterations, cfg.threads = str(out), iterations, 2
    cfg.ppo.batch_size, cfg.ppo.mini_batch_size, cfg.ppo.forward_batch_size = 8, 4, 8
    cfg.task.prompt_tokens, cfg.task.new_tokens, cfg.task.min_new_tokens = 8, 8, 8
    cfg.log.tensorboard = False
    return cfg


PROMPTS = [f"Review {i}: this medicine" for i in range(16)]


def brevity(prompts, completions):
    return [-len(c) / 50 for c in completions]


def _example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", REPO / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["rlhf", "ra_rlhf", "adaptive_ensemble"])
def test_examples_run_end_to_end(name, tiny_model_dir, tmp_path):
    result = _example(name).main(tiny_model_dir, 3, str(tmp_path / name))
    assert (tmp_path / name / "final" / "model.safetensors").is_file()
    assert result.summary["iterations"] == 3 and len(result.trainer.history) == 3
    if name == "rlhf":  # a plain Python reward and a datasets.Dataset: scored before and after
        assert isinstance(result.summary["score_before"], float)
        assert isinstance(result.summary["score_after"], float)
    if name == "ra_rlhf":  # the tail shrinks after the warm start
        assert [h["risk_b0"] for h in result.trainer.history] == [13, 10, 7]
    if name == "adaptive_ensemble":
        assert all(0 < h["uncertainty_weight_mean"] <= 1 for h in result.trainer.history)


class HalfWeight(RewardShaper):
    """A custom shaper: scores from brevity, every sample's KL coefficient doubled and its
    policy-gradient term halved."""

    def __init__(self):
        self.calls = 0

    def __call__(self, prompts, completions):
        self.calls += 1
        n = len(prompts)
        return ShapedReward(torch.tensor(brevity(prompts, completions)),
                            kl_scale=torch.full((n,), 2.0), weight=torch.full((n,), 0.5),
                            stats={"custom_calls": float(self.calls)})


def first_half(iteration, rollout, rewards, dist):
    """A custom selector: the first half of this process's batch trains."""
    keep = torch.arange(len(rollout) // 2)
    return keep, {"custom_kept": float(len(keep))}


def test_custom_shaper_and_selector_through_the_public_api(tiny_model_dir, tmp_path):
    from riskalign.ppo import trainer as trainer_mod

    seen = []
    real = trainer_mod.policy_loss

    def spy(logp, old, adv, mask, clip, weight=None):
        seen.append(weight)
        return real(logp, old, adv, mask, clip, weight)

    shaper = HalfWeight()
    trainer = riskalign.make_trainer(tiny_model_dir, shaper, PROMPTS, tiny_config(tmp_path),
                                     selector=first_half)
    trainer_mod.policy_loss = spy
    try:
        history = trainer.train()
    finally:
        trainer_mod.policy_loss = real
    assert shaper.calls == 2
    for h in history:
        assert h["kept"] == 4 and h["custom_kept"] == 4.0
        assert h["kl_coef_mean"] == pytest.approx(2 * h["beta"])  # beta * c_i, c_i = 2
    assert seen and all(w is not None and torch.equal(w, torch.full_like(w, 0.5)) for w in seen)
    assert trainer.reward(["a"], ["bb"]).tolist() == pytest.approx([-0.04])  # held-out scoring


def test_plug_ins_named_in_the_config(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """reward.shaper=module:name and risk.selector=module:name, from the command line."""
    from riskalign.cli import main

    (tmp_path / "myplugins.py").write_text(
        "import torch\n"
        "from riskalign import RewardShaper, ShapedReward\n"
        "class Constant(RewardShaper):\n"
        "    def __call__(self, prompts, completions):\n"
        "        return ShapedReward(torch.ones(len(prompts)))\n"
        "def two(iteration, rollout, rewards, dist):\n"
        "    return torch.tensor([0, 1]), {'mine': 2.0}\n")
    monkeypatch.chdir(tmp_path)
    argv = ["ppo", f"model.policy={tiny_model_dir}", "task.prompt_tokens=8", "task.new_tokens=8",
            "task.min_new_tokens=8", "task.max_train=32", "ppo.batch_size=8",
            "ppo.mini_batch_size=4", "ppo.forward_batch_size=8", "ppo.total_iterations=2",
            "log.tensorboard=false", "log.eval_prompts=0", "reward.shaper=myplugins:Constant",
            "risk.selector=myplugins:two", f"output_dir={tmp_path / 'run'}"]
    assert main(argv) == 0
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["kept"], r["mine"], r["score_mean"]) for r in rows] == [(2, 2.0, 1.0)] * 2


def test_reward_lists_and_datasets(tiny_model_dir, tmp_path):
    from datasets import Dataset

    from riskalign.api import as_prompts, as_reward

    ds = Dataset.from_dict({"prompt": ["a b", "c"]})
    assert as_prompts(ds) == ["a b", "c"]
    with pytest.raises(ValueError, match="no 'prompt' column"):
        as_prompts(Dataset.from_dict({"text": ["a"]}))
    with pytest.raises(ValueError, match="prompt 1 must be non-empty"):
        as_prompts(["ok", " "])
    summed = as_reward([brevity, lambda p, c: [1.0] * len(c)], [2.0, 0.5], tiny_config(tmp_path),
                       "mean")
    assert summed(["x"], ["12345"]).tolist() == pytest.approx([2 * -0.1 + 0.5])
    ens = as_reward(riskalign.Ensemble([brevity, brevity]), None, tiny_config(tmp_path), "min")
    assert isinstance(ens, riskalign.EnsembleShaper) and ens.method == "min"


def test_registries_are_the_only_source_of_names():
    from riskalign.config import describe, load_config, ConfigError
    from riskalign.registry import ENSEMBLE_METHODS, REWARD_KINDS, SELECTORS

    help_text = "\n".join(describe())
    for registry in (REWARD_KINDS, ENSEMBLE_METHODS, SELECTORS):
        for name in registry.names:
            assert name in help_text
    with pytest.raises(ConfigError, match="one of soft-risk, all or 'module:name'"):
        load_config(None, ["risk.selector=worst"])
    assert load_config(None, ["risk.selector=all", "risk.alpha=0.4"]).risk.selector == "all"
    from riskalign.risk import build_selector

    cfg = load_config(None, ["risk.selector=all", "risk.alpha=0.4", "ppo.total_iterations=4"])
    assert build_selector(cfg, 256) is None  # every trajectory trains despite alpha
    cfg.risk.selector = "soft-risk"
    assert isinstance(build_selector(cfg, 256), riskalign.SoftRiskSelector)


def test_no_import_cycle():
    sys.path.insert(0, str(TESTS))
    from import_graph import cycles, graph

    edges = graph()
    assert len(edges) > 50 and "riskalign.ppo.trainer" in edges
    assert cycles(edges) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_cli_does_not_force_the_hub_offline(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")}
    code = ("import os, riskalign.cli as c; c.main(['ppo', '--help-config']); "
            "import huggingface_hub.constants as k; "
            "print('OFFLINE', os.environ.get('HF_HUB_OFFLINE'), k.HF_HUB_OFFLINE)")
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip().splitlines()[-1] == "OFFLINE None False"


def test_weights_and_biases_offline(tiny_model_dir, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = tiny_config(tmp_path / "run")
    cfg.log.report_to = "wandb"
    riskalign.train(tiny_model_dir, brevity, PROMPTS, cfg)
    run_id = (tmp_path / "run" / "wandb_id.txt").read_text()
    files = list((tmp_path / "run" / "wandb").glob(f"offline-run-*/run-{run_id}.wandb"))
    assert len(files) == 1 and files[0].stat().st_size > 0


def test_report_to_wandb_without_the_package_is_one_line(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if it were not installed
    cfg = tiny_config(tmp_path / "run")
    cfg.log.report_to = "wandb"
    with pytest.raises(ValueError, match="needs the wandb package: pip install wandb"):
        riskalign.train(tiny_model_dir, brevity, PROMPTS, cfg)


def test_the_extending_page_runs(tiny_model_dir, tmp_path, capsys):
    """docs/extending.md's code blocks, run as written (on the tiny model, in a temp folder)."""
    import re

    page = (REPO / "docs" / "extending.md").read_text()
    code = "\n".join(re.findall(r"```python\n(.*?)```", page, re.S))
    code = code.replace('"smollm2-135m"', repr(tiny_model_dir))
    code = code.replace('"runs/extending"', repr(str(tmp_path / "extending")))
    space = {}
    exec(compile(code, "docs/extending.md", "exec"), space)
    history = space["history"]
    assert len(history) == 2
    assert all(1 <= h["kept"] < 16 and h["wary_mean"] > 1 for h in history)
    assert all(h["kl_coef_mean"] > h["beta"] for h in history)  # c_i > 1 raises the KL coefficient


def test_every_public_name_has_a_docstring():
    import inspect

    for name in riskalign.__all__:
        obj = getattr(riskalign, name)
        doc = obj.__doc__ or ""
        generated = inspect.isclass(obj) and doc.startswith(f"{obj.__name__}(")  # dataclass's
        assert doc.strip() and not generated, name


@pytest.mark.parametrize("keep,message", [
    (torch.tensor([], dtype=torch.long), "kept no trajectory"),
    ([0, 0], "index twice"),
    (torch.tensor([99]), "outside the batch of 8"),
    (torch.tensor([0.5]), "integer indices"),
])
def test_a_selector_that_returns_nonsense_is_named(tiny_model_dir, tmp_path, keep, message):
    def select(iteration, rollout, rewards, dist):
        return keep, {}

    trainer = riskalign.make_trainer(tiny_model_dir, brevity, PROMPTS, tiny_config(tmp_path),
                                     selector=select)
    with pytest.raises(ValueError, match=message):
        trainer.step()


def test_a_mask_selects_and_clashing_stats_are_refused(tiny_model_dir, tmp_path):
    mask = torch.tensor([True, False] * 4)
    trainer = riskalign.make_trainer(tiny_model_dir, brevity, PROMPTS, tiny_config(tmp_path),
                                     selector=lambda i, ro, r, d: (mask, {}))
    assert trainer.step()["kept"] == 4
    trainer.select = lambda i, ro, r, d: (mask, {"kl": 1.0})
    with pytest.raises(ValueError, match="selector's stats name 'kl'"):
        trainer.step()


def test_a_shaper_that_returns_nonsense_is_named(tiny_model_dir, tmp_path):
    from riskalign.rewards import RewardError

    def shaper(prompts, completions):
        return ShapedReward(torch.zeros(len(prompts)), weight=-torch.ones(len(prompts)))

    trainer = riskalign.make_trainer(tiny_model_dir, riskalign.FunctionShaper(shaper), PROMPTS,
                                     tiny_config(tmp_path))
    with pytest.raises(RewardError, match="weight is -1.0 for sample 0; it must be finite and"):
        trainer.step()


def test_model_objects_with_lora_and_the_recorded_config(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from riskalign.models import ActorCritic

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    lm = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    trainer = riskalign.make_trainer(ActorCritic(lm), brevity, PROMPTS, tiny_config(tmp_path),
                                     tokenizer=tok)
    assert trainer.policy.is_lora and trainer.ref is None
    trainer.step()
    with pytest.raises(ValueError, match="a list of prompts, not one string"):
        riskalign.make_trainer(tiny_model_dir, brevity, "one prompt", tiny_config(tmp_path))
    result = riskalign.train(tiny_model_dir, brevity, PROMPTS, tiny_config(tmp_path / "r", 1),
                             eval_prompts=PROMPTS[:4])
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["model"]["policy"] == tiny_model_dir  # the model trained, not the default
    assert isinstance(result.summary["score_before"], float)  # eval_prompts given: scored


def test_the_cpu_yaml_is_the_cpu_preset():
    """configs/cpu.yaml is presets.cpu_run() for the command line: the same model, task and PPO
    settings (it adds held-out scoring and its own output folder)."""
    from riskalign.config import load_config, to_dict

    yaml_cfg, preset = to_dict(load_config(REPO / "configs" / "cpu.yaml")), to_dict(presets.cpu_run())
    for section in ("model", "ppo", "risk", "seed", "threads"):
        assert yaml_cfg[section] == preset[section], section
    for key in ("name", "prompt_tokens", "new_tokens", "min_new_tokens"):
        assert yaml_cfg["task"][key] == preset["task"][key], key
