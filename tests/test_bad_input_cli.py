"""Malformed inputs through the CLI entry point, in-process: each ends in exit code 2 with one
line naming what is wrong, no traceback, and no output left behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from riskalign.cli import main

TINY_RUN = ["task.prompt_tokens=8", "task.new_tokens=8", "task.min_new_tokens=8",
            "task.max_train=32", "task.max_eval=8", "ppo.batch_size=8", "ppo.mini_batch_size=8",
            "ppo.forward_batch_size=8", "ppo.ppo_epochs=1", "ppo.total_iterations=2",
            "log.tensorboard=false", "log.eval_prompts=0", "log.checkpoint_every=1"]
REWARDS = '''
import math
def ok(prompts, completions):
    return [0.0] * len(completions)
def boom(prompts, completions):
    raise ZeroDivisionError("division by zero")
def strings(prompts, completions):
    return ["high"] * len(completions)
def short(prompts, completions):
    return [0.0] * (len(completions) - 1)
def nan(prompts, completions):
    return [math.nan] * len(completions)
not_a_function = 3
'''


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its size and modification time."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def work(tmp_path_factory, tiny_model_dir):
    """A folder holding the user's files: a reward module, damaged model folders, data files,
    a damaged ensemble and a finished two-iteration run to damage."""
    d = tmp_path_factory.mktemp("bad-input")
    (d / "userrewards.py").write_text(REWARDS)
    (d / "failing_import.py").write_text("raise RuntimeError('no GPU found')\n")
    model = Path(tiny_model_dir)
    for name, damage in [("truncated", lambda m: (m / "model.safetensors").write_bytes(
            (m / "model.safetensors").read_bytes()[:1000])),
            ("no-config", lambda m: (m / "config.json").unlink())]:
        shutil.copytree(model, d / name)
        damage(d / name)
    (d / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    (d / "empty.txt").write_text("\n\n")
    (d / "torn.jsonl").write_text('{"prompt": "hi", "response": "hello"}\n{"prompt": "b\n')
    (d / "same.jsonl").write_text(json.dumps({"chosen": "a", "rejected": "a"}) + "\n")
    (d / "latin1.csv").write_bytes("chosen,rejected\ncaf\xe9,tea\n".encode("latin-1"))
    (d / "bad.yaml").write_text("ppo: [1, 2\n")
    (d / "list.yaml").write_text("- 1\n- 2\n")
    (d / "latin1.yaml").write_bytes("seed: 1 # caf\xe9\n".encode("latin-1"))
    (d / "attr.yaml").write_text("critique_request: 'Critique by {virtue}: {virtue.__init__.__globals__}'\n")
    (d / "unknown.yaml").write_text("critique_request: 'Critique by {virtue} and {mood}'\n")
    (d / "drug").mkdir()
    (d / "drug" / "drugsComTrain.tsv").write_bytes(b"\xff\xfe\x00bad")
    (d / "a-file").write_text("not a folder\n")
    for name, text in [("torn-manifest", '{"members": [{"path": "member-0", "me'),
                       ("no-members", '{"members": []}'),
                       ("list-manifest", '[1, 2]')]:
        (d / name).mkdir()
        (d / name / "manifest.json").write_text(text)
    (d / "no-manifest").mkdir()
    run = d / "finished"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(d)
        assert main(["ppo", f"model.policy={model}", f"output_dir={run}", "reward.kind=python",
                     "reward.function=userrewards:ok", *TINY_RUN]) == 0
    return d


def _damage_checkpoint(run: Path, how: str) -> None:
    ck = run / "checkpoints" / "iter-000002"
    if how == "bitflip":
        data = bytearray((ck / "trainable.safetensors").read_bytes())
        data[-5] ^= 0x40  # tensor data, not the header: the file still parses
        (ck / "trainable.safetensors").write_bytes(bytes(data))
    elif how == "no-optimizer":
        state = torch.load(ck / "state.pt", weights_only=True)
        del state["optimizer"]
        torch.save(state, ck / "state.pt")
        sums = json.loads((ck / "checksums.json").read_text())
        from riskalign.ppo.checkpoint import sha256
        sums["state.pt"] = sha256(ck / "state.pt")  # damaged consistently: only the key is gone
        (ck / "checksums.json").write_text(json.dumps(sums))
    elif how == "garbage-state":
        (ck / "state.pt").write_bytes(b"not a pickle")
        (ck / "checksums.json").unlink()
    elif how == "dangling-latest":
        (run / "checkpoints" / "latest").write_text("iter-000099")


RUN = ["ppo", "model.policy={model}", "reward.kind=python", "reward.function=userrewards:ok",
       *TINY_RUN]

# (name, arguments, words the error line must hold, a checkpoint damage or None)
CASES = [
    # configs
    ("zero batch", [*RUN, "ppo.batch_size=0"], "ppo.batch_size must be > 0", None),
    ("unknown key", [*RUN, "ppo.bogus=1"], "unknown config key 'ppo.bogus'", None),
    ("missing config", [*RUN, "--config", "{work}/missing.yaml"], "not found", None),
    ("invalid yaml", [*RUN, "--config", "{work}/bad.yaml"], "bad.yaml line 2: invalid YAML", None),
    ("yaml not a mapping", [*RUN, "--config", "{work}/list.yaml"], "mapping", None),
    ("yaml not utf-8", [*RUN, "--config", "{work}/latin1.yaml"], "latin1.yaml: not UTF-8", None),
    ("wrong type", [*RUN, "ppo.learning_rate=fast"], "ppo.learning_rate must be a number",
     None),
    ("ensemble of 0", ["reward", "data={work}/same.jsonl", "--ensemble", "0"],
     "ensemble must be >= 1", None),
    ("demo seeds 0", ["demo", "--seeds", "0"], "seeds must be >= 1", None),
    ("rho out of range", [*RUN, "risk.alpha=0.4", "risk.rho=2"], "risk.rho must be in", None),
    # data files
    ("sft text not utf-8", ["sft", "model.policy={model}", "text_file={work}/latin1.txt"],
     "latin1.txt: not UTF-8", None),
    ("sft text empty", ["sft", "model.policy={model}", "text_file={work}/empty.txt"],
     "empty.txt: no non-empty lines", None),
    ("sft pairs torn", ["sft", "model.policy={model}", "pairs_file={work}/torn.jsonl"],
     "torn.jsonl", None),
    ("prefs identical", ["reward", "data={work}/same.jsonl"], "same.jsonl row 1", None),
    ("prefs csv not utf-8", ["reward", "data={work}/latin1.csv"], "latin1.csv", None),
    ("task file not utf-8", [*RUN, "task.name=drugreview-sentiment", "task.data_path={work}/drug"],
     "drugsComTrain.tsv: not UTF-8", None),
    ("rlaif template attribute", ["rlaif", "prompts", "constitution={work}/attr.yaml"],
     "critique_request' has a broken placeholder", None),
    ("rlaif template unknown", ["rlaif", "prompts", "constitution={work}/unknown.yaml"],
     "unknown placeholder {mood}", None),
    ("rlaif prompts not utf-8", ["rlaif", "prompts", "prompts={work}/latin1.txt"],
     "latin1.txt", None),
    # reward functions
    ("reward raises", [*RUN, "reward.function=userrewards:boom"],
     "reward function userrewards:boom raised ZeroDivisionError: division by zero "
     "(iteration 1, batch of 8)", None),
    ("reward strings", [*RUN, "reward.function=userrewards:strings"],
     "returned list of str", None),
    ("reward short", [*RUN, "reward.function=userrewards:short"], "shape (7,)", None),
    ("reward nan", [*RUN, "reward.function=userrewards:nan"], "must be finite", None),
    ("reward module missing", [*RUN, "reward.function=nosuchmodule:f"],
     "cannot import module 'nosuchmodule'", None),
    ("reward not callable", [*RUN, "reward.function=userrewards:not_a_function"],
     "no callable 'not_a_function'", None),
    ("reward module fails", [*RUN, "reward.function=failing_import:f"],
     "importing 'failing_import' raised RuntimeError: no GPU found", None),
    # model folders
    ("truncated weights", [*RUN, "model.policy={work}/truncated"], "SafetensorError", None),
    ("no config.json", [*RUN, "model.policy={work}/no-config"], "no-config", None),
    ("model is a file", [*RUN, "model.policy={work}/a-file"], "is a file", None),
    ("model folder missing", [*RUN, "model.policy=./no/such/model"], "not found", None),
    ("context too long", [*RUN, "task.prompt_tokens=200", "task.new_tokens=100",
                          "task.min_new_tokens=0"], "exceeds the model's context of 256", None),
    ("generate empty prompt", ["generate", "--model", "{model}", "--prompt", ""],
     "prompt 1 is empty", None),
    # ensembles
    ("no manifest", [*RUN, "reward.kind=ensemble", "reward.model={work}/no-manifest"],
     "no manifest.json", None),
    ("torn manifest", [*RUN, "reward.kind=ensemble", "reward.model={work}/torn-manifest"],
     "ensemble manifest", None),
    ("no members", [*RUN, "reward.kind=ensemble", "reward.model={work}/no-members"],
     "lists no members", None),
    ("manifest a list", [*RUN, "reward.kind=ensemble", "reward.model={work}/list-manifest"],
     "expected a JSON dict", None),
    # checkpoints (resuming a copy of a finished run)
    ("bit flip", [*RUN, "--resume"], "does not match its checksum", "bitflip"),
    ("no optimizer", [*RUN, "--resume"], "lacks its 'optimizer' entry", "no-optimizer"),
    ("garbage state", [*RUN, "--resume"], "corrupt or unreadable", "garbage-state"),
    ("dangling latest", [*RUN, "--resume"], "iter-000099, which does not exist",
     "dangling-latest"),
    ("other settings", [*RUN, "--resume", "ppo.learning_rate=0.5"], "'ppo.learning_rate' differs",
     "none"),
    ("rerun without resume", RUN, "holds an earlier run", "none"),
    ("eval model missing", ["eval", "--model", "a=./no/such/model"], "not found", None),
    ("prefs policy missing", ["prefs", "policy=./no/such/model"], "not found", None),
    # output paths
    ("output is a file", [*RUN, "output_dir={work}/a-file"], "is a file, not a folder", None),
    ("output below a file", [*RUN, "output_dir={work}/a-file/run"], "which is a file", None),
    ("sft output is a file", ["sft", "model.policy={model}", "output_dir={work}/a-file"],
     "is a file, not a folder", None),
    ("sft output holds other files", ["sft", "model.policy={model}", "output_dir={work}/drug"],
     "holds files but no model", None),
]


@pytest.mark.parametrize("name,argv,needle,damage", CASES, ids=[c[0] for c in CASES])
def test_bad_input_ends_in_one_line(work, tiny_model_dir, tmp_path, monkeypatch, capsys, name,
                                    argv, needle, damage):
    monkeypatch.chdir(work)  # the reward module is found in the working directory
    out = tmp_path / "out"
    if damage is not None:
        shutil.copytree(work / "finished", out)
        _damage_checkpoint(out, damage)
    before = snapshot(out)
    argv = [a.format(model=tiny_model_dir, work=work) for a in argv]
    if not any(a.startswith("output_dir=") for a in argv) and argv[0] != "generate":
        argv.append(f"output_dir={out}")
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("riskalign")]
    assert len(lines) == 1 and lines[0].startswith("riskalign: error: "), err
    assert needle in lines[0]
    assert snapshot(out) == before  # nothing written, or the damaged run left as it was
    assert not (work / "a-file").is_dir()


def test_debug_shows_the_traceback(work, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(work)
    argv = [a.format(model=tiny_model_dir) for a in RUN]
    with pytest.raises(Exception, match="division by zero") as e:
        main([*argv, "reward.function=userrewards:boom", f"output_dir={tmp_path / 'o'}",
              "--debug"])
    assert isinstance(e.value.__cause__, ZeroDivisionError)


def test_resume_without_checkpoint_says_so(work, tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(work)
    argv = [a.format(model=tiny_model_dir) for a in RUN]
    assert main([*argv, f"output_dir={tmp_path / 'o'}", "--resume"]) == 0
    assert "no checkpoint" in capsys.readouterr().out
    assert (tmp_path / "o" / "final" / "model.safetensors").is_file()


def test_warm_start_past_the_run_warns(work, tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(work)
    argv = [a.format(model=tiny_model_dir) for a in RUN]
    assert main([*argv, f"output_dir={tmp_path / 'o'}", "risk.alpha=0.4",
                 "risk.warm_start=50"]) == 0
    warnings = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("warning")]
    assert len(warnings) == 1 and "risk.warm_start (50)" in warnings[0]


def test_overwrite_replaces_an_earlier_run(work, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(work)
    out = tmp_path / "o"
    shutil.copytree(work / "finished", out)
    (out / "checkpoints" / "iter-000009").mkdir()  # a leftover a mixed run would keep
    (out / "notes.txt").write_text("mine")
    argv = [a.format(model=tiny_model_dir) for a in RUN]
    assert main([*argv, f"output_dir={out}", "--overwrite"]) == 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["iter-000002", "latest"]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert (out / "notes.txt").read_text() == "mine"  # not the run's: left alone


def test_finished_run_resumed_keeps_its_summary(work, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(work)
    out = tmp_path / "o"
    shutil.copytree(work / "finished", out)
    summary = (out / "summary.json").read_text()
    argv = [a.format(model=tiny_model_dir) for a in RUN]
    assert main([*argv, f"output_dir={out}", "--resume"]) == 0
    assert (out / "summary.json").read_text() == summary


def test_help_config_into_a_closed_pipe(tmp_path):
    import subprocess
    import sys

    p = subprocess.run(f"{sys.executable} -m riskalign.cli ppo --help-config | head -1",
                       shell=True, capture_output=True, text=True, timeout=120)
    assert p.stdout.strip() and "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr
