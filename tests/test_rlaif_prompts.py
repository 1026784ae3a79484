"""The RLAIF red-teaming prompt set and its loaders (no models)."""

import json

import pytest

from riskalign.rlaif import prompts as P
from riskalign.tasks import DataError

HH_CHOSEN = ("\n\nHuman: How do I keep my sourdough starter alive?\n\nAssistant: Feed it daily."
             "\n\nHuman: And if I go away for a week?\n\nAssistant: Put it in the fridge.")


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_shipped_file_loads_with_both_kinds():
    rows = [json.loads(line) for line in P.DEFAULT_PROMPTS.read_text(encoding="utf-8").splitlines()]
    kinds = [r["kind"] for r in rows]
    assert set(kinds) == {"tempting", "ordinary"}
    n_tempting = kinds.count("tempting")
    assert 0.4 <= n_tempting / len(rows) <= 0.7
    assert kinds.count("ordinary") >= 100
    texts = [r["prompt"] for r in rows]
    assert len({t.strip().lower() for t in texts}) == len(texts), "duplicated prompts"
    assert all(3 <= len(t.split()) <= 30 for t in texts)
    loaded = P.load_prompts()
    assert loaded == [t.strip() for t in texts]
    assert len(loaded) >= 300 and all(p.strip() for p in loaded)


def test_txt_jsonl_csv(tmp_path):
    txt = tmp_path / "p.txt"
    txt.write_text("  first prompt \n\n second prompt\n", encoding="utf-8")
    assert P.load_prompts(str(txt)) == ["first prompt", "second prompt"]
    jl = _jsonl(tmp_path / "p.jsonl", [{"prompt": "a?"}, {"prompt": " b? ", "kind": "x"}])
    assert P.load_prompts(str(jl)) == ["a?", "b?"]
    csv = tmp_path / "p.csv"
    csv.write_text('prompt,kind\n"Hello, there",ordinary\nBe rude,tempting\n', encoding="utf-8")
    assert P.load_prompts(str(csv)) == ["Hello, there", "Be rude"]


def test_hh_rlhf_chosen_gives_first_human_turn(tmp_path):
    jl = _jsonl(tmp_path / "hh.jsonl", [{"chosen": HH_CHOSEN, "rejected": "x"},
                                        {"prompt": "plain one", "chosen": HH_CHOSEN}])
    assert P.load_prompts(str(jl)) == ["How do I keep my sourdough starter alive?", "plain one"]
    assert P.first_human_turn("no dialogue here") is None


def test_hub_name_uses_local_cache(monkeypatch):
    calls = []

    def fake(name, split):
        calls.append((name, split))
        return [{"chosen": HH_CHOSEN}, {"chosen": "\n\nHuman: Hi there\n\nAssistant: Hello"}]

    monkeypatch.setattr(P.files, "load_hf_dataset", fake)
    assert P.load_prompts("someone/hh") == ["How do I keep my sourdough starter alive?", "Hi there"]
    assert calls == [("someone/hh", "train")]
    monkeypatch.setattr(P.files, "load_hf_dataset", lambda name, split: None)
    with pytest.raises(DataError, match="not in the local cache"):
        P.load_prompts("someone/hh")


def test_errors(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        P.load_prompts(str(tmp_path / "missing.jsonl"))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(DataError, match="empty.txt.*no prompts"):
        P.load_prompts(str(empty))
    bad = _jsonl(tmp_path / "bad.jsonl", [{"prompt": "ok"}, {"prompt": "fine"}, {"text": "no"}])
    with pytest.raises(DataError, match=r"bad.jsonl row 3: no 'prompt'"):
        P.load_prompts(str(bad))
    not_hh = _jsonl(tmp_path / "nothh.jsonl", [{"chosen": "just an answer"}])
    with pytest.raises(DataError, match="row 1: .*not an HH-RLHF dialogue"):
        P.load_prompts(str(not_hh))
    num = _jsonl(tmp_path / "num.jsonl", [{"prompt": "ok"}, {"prompt": 5}])
    with pytest.raises(DataError, match="row 2: prompt must be a string"):
        P.load_prompts(str(num))
    blank = _jsonl(tmp_path / "blank.jsonl", [{"prompt": "   "}])
    with pytest.raises(DataError, match="row 1: empty prompt"):
        P.load_prompts(str(blank))


def test_duplicates_dropped_keeping_first(tmp_path):
    txt = tmp_path / "d.txt"
    txt.write_text("b\na\nb\n c \na\n", encoding="utf-8")
    assert P.load_prompts(str(txt)) == ["b", "a", "c"]


def test_split_sizes_and_determinism():
    prompts = [f"p{i}" for i in range(20)]
    train, held = P.split_prompts(prompts, 0.25, seed=1)
    assert (len(train), len(held)) == (15, 5)
    assert sorted(train + held) == sorted(prompts)
    train3, held3 = P.split_prompts(prompts, 3, seed=1)
    assert (len(train3), len(held3)) == (17, 3)
    assert P.split_prompts(prompts, 0.25, seed=1) == (train, held)
    assert P.split_prompts(prompts, 0.25, seed=2) != (train, held)
    assert prompts == [f"p{i}" for i in range(20)], "input list was modified"


@pytest.mark.parametrize("held_out", [0.01, 20, 25, 0, 1.5, -1, True])
def test_split_errors(held_out):
    with pytest.raises(DataError, match="held_out"):
        P.split_prompts([f"p{i}" for i in range(20)], held_out, seed=0)
