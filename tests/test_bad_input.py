"""Bad input gives one clear error naming the field, file or sample."""

import pytest
import torch

from riskalign.config import ConfigError, load_config
from riskalign.ppo.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from riskalign.rewards import RewardError, checked_scores
from riskalign.rewards.python_fn import PythonReward


@pytest.mark.parametrize("override,needle", [
    ("ppo.batch_size=0", "ppo.batch_size must be > 0"),
    ("ppo.lam=1.5", "ppo.lam must be in [0, 1]"),
    ("ppo.mini_batch_size=999", "ppo.mini_batch_size must be <= batch_size"),
    ("ppo.bogus=1", "unknown config key 'ppo.bogus'"),
    ("model.dtype=int8", "model.dtype must be one of"),
    ("reward.kind=magic", "reward.kind must be one of"),
    ("ppo.learning_rate=fast", "ppo.learning_rate must be a number"),
    ("log.tensorboard=maybe", "log.tensorboard must be true or false"),
])
def test_invalid_config_values(override, needle):
    with pytest.raises(ConfigError, match="^" + needle.replace("[", r"\[").replace("]", r"\]")
                       .replace("(", r"\(").replace(")", r"\)")):
        load_config(None, [override])


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ppo: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml line"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_overrides_parse_types():
    cfg = load_config(None, ["ppo.learning_rate=3e-3", "model.lora.enabled=true",
                             "task.max_train=10", "model.lora.target_modules=[q_proj]"])
    assert cfg.ppo.learning_rate == 3e-3 and cfg.model.lora.enabled
    assert cfg.task.max_train == 10 and cfg.model.lora.target_modules == ["q_proj"]


def test_reward_wrong_length_and_nan_name_the_sample():
    with pytest.raises(RewardError, match="batch of 2"):
        checked_scores(PythonReward("easy_rewards:wrong_length"), ["a", "b"], ["x", "y"])
    with pytest.raises(RewardError, match="sample 1"):
        checked_scores(PythonReward("easy_rewards:nan_on_second"), ["a", "b"], ["x", "y"])
    with pytest.raises(ValueError, match="cannot import module"):
        PythonReward("no_such_module_xyz:f")


def test_corrupt_or_incompatible_checkpoint(tmp_path):
    model = torch.nn.Linear(2, 2)
    path = save_checkpoint(tmp_path, 1, model, {"x": 1})
    (path / "trainable.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path, model)
    path = save_checkpoint(tmp_path, 2, torch.nn.Linear(3, 2), {"x": 1})
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(path, model)


def test_missing_default_model_says_what_to_run(tmp_path, monkeypatch):
    from riskalign.assets import MissingModelError, resolve_model

    monkeypatch.setenv("RISKALIGN_HOME", str(tmp_path))
    with pytest.raises(MissingModelError, match="riskalign assets"):
        resolve_model("smollm2-135m")
    with pytest.raises(MissingModelError, match="not found"):
        resolve_model("./no/such/model")


def test_cli_prints_one_line_error(capsys):
    from riskalign.cli import main

    assert main(["ppo", "ppo.batch_size=-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["riskalign: error: ppo.batch_size must be > 0, got -1"]


def test_shipped_configs_load():
    from pathlib import Path

    for f in sorted(Path(__file__).parent.parent.glob("configs/*.yaml")):
        load_config(f)
    assert load_config(Path(__file__).parent.parent / "configs/imdb-ra-rlhf.yaml").risk.alpha == 0.4
    from riskalign.study import StudyConfig

    studies = sorted(Path(__file__).parent.parent.glob("configs/study/*.yaml"))
    assert studies
    for f in studies:
        load_config(f, cls=StudyConfig)
