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
    from riskalign.commands.study import StudyConfig

    studies = sorted(Path(__file__).parent.parent.glob("configs/study/*.yaml"))
    assert studies
    for f in studies:
        load_config(f, cls=StudyConfig)


def test_full_disk_at_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    import errno

    from riskalign.ppo import checkpoint

    model = torch.nn.Linear(2, 2)
    save_checkpoint(tmp_path, 1, model, {"x": 1})

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full)
    with pytest.raises(CheckpointError, match="iter-000002 .*No space left on device.*unchanged"):
        save_checkpoint(tmp_path, 2, model, {"x": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iter-000001", "latest"]
    assert load_checkpoint(tmp_path / "iter-000001", model)["x"] == 1


def test_pruning_keeps_the_newest_by_iteration_not_by_name(tmp_path):
    model = torch.nn.Linear(2, 2)
    for it in (9, 10, 11):  # iter-000009 < iter-000010 by name too; a stale later one goes
        save_checkpoint(tmp_path, it, model, {"x": it}, keep=2)
    (tmp_path / "iter-000050").mkdir()  # a leftover from some other run, newer by name
    save_checkpoint(tmp_path, 12, model, {"x": 12}, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iter-000011", "iter-000012", "latest"]


def test_failed_command_keeps_finished_work(tmp_path):
    from riskalign.outputs import OutputFolder

    fresh = OutputFolder(tmp_path / "a")
    (tmp_path / "a" / "tb").mkdir(parents=True)
    (tmp_path / "a" / "metrics.jsonl").write_text("")  # failed before its first iteration
    assert fresh.discard_if_new() and not (tmp_path / "a").exists()
    started = OutputFolder(tmp_path / "d")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "metrics.jsonl").write_text('{"iteration": 1}\n')  # tells what went wrong
    assert not started.discard_if_new() and (tmp_path / "d").exists()
    worked = OutputFolder(tmp_path / "b")
    (tmp_path / "b" / "checkpoints" / "iter-000001").mkdir(parents=True)
    (tmp_path / "b" / "checkpoints" / "iter-000001" / "trainable.safetensors").write_bytes(b"x")
    assert not worked.discard_if_new() and (tmp_path / "b").exists()
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "mine.txt").write_text("user's")
    held = OutputFolder(tmp_path / "c")
    assert not held.discard_if_new() and (tmp_path / "c" / "mine.txt").exists()


def test_torn_last_log_line_is_dropped_on_resume(tmp_path):
    from riskalign.logger import RunLogger

    (tmp_path / "metrics.jsonl").write_text('{"iteration": 1}\n{"iteration": 2}\n{"itera')
    RunLogger(tmp_path, 4, start=1, tensorboard=False).progress.stop()
    assert (tmp_path / "metrics.jsonl").read_text() == '{"iteration": 1}\n'
    (tmp_path / "metrics.jsonl").write_text('{"iteration": 1}\n{"itera\n{"iteration": 2}\n')
    with pytest.raises(ValueError, match="metrics log .* line 2"):  # damage inside: named
        RunLogger(tmp_path, 4, start=2, tensorboard=False)


def test_templates_fill_names_only():
    from riskalign.rlaif.constitution import fill, template_fields

    assert fill("{virtue}: {{literal}} {text}", virtue="honesty", text="{x.y}") == \
        "honesty: {literal} {x.y}"
    for bad in ("{virtue.__class__}", "{0}", "{virtue!r}", "{virtue:>10}", "{text[0]}"):
        with pytest.raises(ValueError, match="not a plain"):
            template_fields(bad)
