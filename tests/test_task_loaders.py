"""Task loaders and file reading: small files written to tmp_path, no models or tokenizers."""

from __future__ import annotations

import json
import sys
import types

import pandas as pd
import pytest

from riskalign.tasks import DataError, Example, get_spec, task_names
from riskalign.tasks import drugreview, files, imdb, jigsaw, rtp


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path, rows, sep=","):
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, sep=sep, index=False)
    return path


def write_parquet(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


@pytest.fixture
def no_hf(monkeypatch):
    """The HF datasets cache has nothing."""
    monkeypatch.setattr(files, "load_hf_dataset", lambda name, split: None)


# --- read_records / find_split_file ------------------------------------------------------------

ROWS = [{"text": "a, \"quoted\" one", "label": 1}, {"text": "b", "label": 0}]


@pytest.mark.parametrize("name,writer", [
    ("d.csv", write_csv),
    ("d.tsv", lambda p, r: write_csv(p, r, sep="\t")),
    ("d.jsonl", write_jsonl),
    ("d.json", write_jsonl),
    ("d.parquet", write_parquet),
])
def test_read_records_formats(tmp_path, name, writer):
    path = writer(tmp_path / name, ROWS)
    assert files.read_records(path) == ROWS


def test_read_records_json_list_and_blank_lines(tmp_path):
    p = tmp_path / "list.json"
    p.write_text(json.dumps(ROWS, indent=2))
    assert files.read_records(p) == ROWS
    q = tmp_path / "blank.jsonl"
    q.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[1]) + "\n")
    assert files.read_records(q) == ROWS


def test_read_records_empty_cells_become_none(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("text,toxic\nNA,\nhello,0.5\n")
    assert files.read_records(p) == [{"text": "NA", "toxic": None},
                                     {"text": "hello", "toxic": 0.5}]


def test_malformed_jsonl_names_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"text": "ok"}\n{"text": "ok"}\n{"text": oops}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl line 3: invalid JSON") as e:
        files.read_records(p)
    assert "\n" not in str(e.value)


def test_jsonl_line_that_is_not_an_object(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"text": "ok"}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"bad\.jsonl line 2: expected a JSON object"):
        files.read_records(p)


@pytest.mark.parametrize("name,content", [
    ("e.csv", ""), ("e.jsonl", ""), ("e.parquet", ""), ("h.csv", "text,label\n"),
    ("w.jsonl", "\n\n"), ("l.json", "[]"),
])
def test_empty_file(tmp_path, name, content):
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(DataError, match=rf"{name}: empty file"):
        files.read_records(p)


def test_unsupported_extension(tmp_path):
    p = tmp_path / "data.txt"
    p.write_text("some text\n")
    with pytest.raises(DataError, match=r"data\.txt: unsupported file type '\.txt'"):
        files.read_records(p)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        files.read_records(tmp_path / "nope.csv")


def test_unreadable_parquet_and_csv(tmp_path):
    p = tmp_path / "junk.parquet"
    p.write_bytes(b"this is not parquet at all")
    with pytest.raises(DataError, match=r"junk\.parquet: cannot read parquet file") as e:
        files.read_records(p)
    assert "\n" not in str(e.value)
    c = tmp_path / "ragged.csv"
    c.write_text("a,b\n1,2\n1,2,3,4\n")
    with pytest.raises(DataError, match=r"ragged\.csv: cannot read csv file"):
        files.read_records(c)
    u = tmp_path / "latin.jsonl"
    u.write_bytes(b'{"text": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"latin\.jsonl: cannot read"):
        files.read_records(u)


def test_find_split_file(tmp_path):
    assert files.find_split_file(tmp_path, "train") is None
    write_csv(tmp_path / "test_labels.csv", ROWS)  # must not count as the test split
    assert files.find_split_file(tmp_path, "test") is None
    write_parquet(tmp_path / "plain_text" / "train-00000-of-00001.parquet", ROWS)
    write_parquet(tmp_path / "data" / "test-00000-of-00001.parquet", ROWS)
    assert files.find_split_file(tmp_path, "train").name == "train-00000-of-00001.parquet"
    assert files.find_split_file(tmp_path, "test").parent.name == "data"
    write_jsonl(tmp_path / "train.jsonl", ROWS)
    assert files.find_split_file(tmp_path, "train") == tmp_path / "train.jsonl"


def test_locate_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        files.locate(tmp_path / "missing")
    write_csv(tmp_path / "a.csv", ROWS)
    write_csv(tmp_path / "b.csv", ROWS)
    with pytest.raises(DataError, match="expected train and test files"):
        files.locate(tmp_path)


def test_load_hf_dataset_returns_none_on_failure(monkeypatch):
    def fail(name, split):
        raise ConnectionError("offline")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=fail))
    assert files.load_hf_dataset("stanfordnlp/imdb", "train") is None
    monkeypatch.setitem(sys.modules, "datasets",
                        types.SimpleNamespace(load_dataset=lambda name, split: ROWS))
    assert files.load_hf_dataset("stanfordnlp/imdb", "train") == ROWS


def test_seeded_split_floor_and_determinism():
    ex = [Example(str(i), 1) for i in range(11)]
    tr, te = files.seeded_split(ex, 0.8)
    assert (len(tr), len(te)) == (8, 3)  # floor(11 * 0.8) = 8
    assert sorted(tr + te, key=lambda e: int(e.text)) == ex
    assert files.seeded_split(ex, 0.8) == (tr, te)


# --- imdb-gen ----------------------------------------------------------------------------------

def test_imdb_folder_labels_and_cleaning(tmp_path):
    write_csv(tmp_path / "train.csv", [
        {"text": "Great film.<br /><br />Loved it &amp; more", "label": 1},
        {"text": "Awful.<br/>Just awful", "label": 0},
        {"text": "   ", "label": 1},  # empty after cleaning: skipped
    ])
    write_jsonl(tmp_path / "test.jsonl", [
        {"review": "Fine", "label": "pos"}, {"review": "Bad", "label": "negative"},
        {"review": "Meh", "label": "NEG"}, {"review": "Unlabelled", "label": -1},
    ])
    train, test = imdb.load(str(tmp_path))
    assert train == [Example("Great film. Loved it & more", 1), Example("Awful. Just awful", 0)]
    assert [e.label for e in test] == [1, 0, 0, None]


def test_imdb_parquet_shards_and_sentiment_column(tmp_path):
    rows = [{"review": f"review {i}", "sentiment": "positive" if i % 2 else "negative"}
            for i in range(6)]
    write_parquet(tmp_path / "plain_text" / "train-00000-of-00001.parquet", rows)
    write_parquet(tmp_path / "plain_text" / "test-00000-of-00001.parquet", rows[:2])
    train, test = imdb.load(str(tmp_path))
    assert [e.label for e in train] == [0, 1, 0, 1, 0, 1]
    assert len(test) == 2


def test_imdb_single_file_split_80_20_deterministic(tmp_path):
    rows = [{"text": f"review number {i}", "label": i % 2} for i in range(10)]
    path = write_jsonl(tmp_path / "imdb.jsonl", rows)
    train, test = imdb.load(str(path))
    assert (len(train), len(test)) == (8, 2)
    assert sorted(e.text for e in train + test) == sorted(r["text"] for r in rows)
    assert imdb.load(str(path)) == (train, test)
    assert imdb.load(str(tmp_path)) == (train, test)  # folder with one data file


def test_imdb_bad_label_and_missing_column(tmp_path):
    bad = write_csv(tmp_path / "bad.csv", [{"text": "x", "label": 1}, {"text": "y", "label": 7}])
    with pytest.raises(DataError, match=r"bad\.csv record 2: label must be"):
        imdb.load(str(bad))
    nocol = write_csv(tmp_path / "nocol.csv", [{"body": "x", "label": 1}])
    with pytest.raises(DataError, match=r"nocol\.csv: missing column text or review"):
        imdb.load(str(nocol))


def test_imdb_without_data_path(no_hf):
    with pytest.raises(DataError, match="stanfordnlp/imdb.*task.data_path.*text"):
        imdb.load(None)


def test_imdb_from_hf_cache(monkeypatch):
    data = {"train": [{"text": "a<br />b", "label": 1}], "test": [{"text": "c", "label": 0}]}
    monkeypatch.setattr(files, "load_hf_dataset", lambda name, split: data[split])
    assert imdb.load(None) == ([Example("a b", 1)], [Example("c", 0)])


# --- jigsaw-gen --------------------------------------------------------------------------------

def _comments(n_toxic, n_clean, start=0, toxic=1, clean=0):
    rows = [{"id": f"t{start + i}", "comment_text": f"toxic comment {start + i}", "toxic": toxic}
            for i in range(n_toxic)]
    rows += [{"id": f"c{start + i}", "comment_text": f"clean comment {start + i}", "toxic": clean}
             for i in range(n_clean)]
    return rows


def _counts(examples):
    return sum(e.label == 0 for e in examples), sum(e.label == 1 for e in examples)


def test_jigsaw_train_70_30_and_test_labels_join(tmp_path):
    write_csv(tmp_path / "train.csv", _comments(20, 100))
    test_rows = _comments(5, 15, start=1000) + _comments(0, 10, start=2000)
    write_csv(tmp_path / "test.csv", [{k: r[k] for k in ("id", "comment_text")}
                                      for r in test_rows])
    labels = [{"id": r["id"], "toxic": -1 if r["id"].startswith("c2") else r["toxic"]}
              for r in test_rows]
    write_csv(tmp_path / "test_labels.csv", labels)
    write_csv(tmp_path / "sample_submission.csv", labels)  # ignored

    train, test = jigsaw.load(str(tmp_path))
    # toxic is the scarce class at 70:30: keep all 20, floor(20 * 70 / 30) = 46 non-toxic
    assert _counts(train) == (20, 46)
    # test: 10 rows labelled -1 dropped, 5 toxic + 15 non-toxic -> 5 + 5 at 50:50
    assert _counts(test) == (5, 5)
    assert not any(e.text.startswith("clean comment 2") for e in test)
    assert {e.text for e in test if e.label == 0} == {f"toxic comment {1000 + i}" for i in range(5)}
    assert jigsaw.load(str(tmp_path)) == (train, test)


def test_jigsaw_probabilities_and_nontoxic_scarce(tmp_path):
    # toxic is a probability: 0.8 toxic, 0.2 non-toxic; 100 toxic and 10 non-toxic
    write_jsonl(tmp_path / "train.jsonl", _comments(100, 10, toxic=0.8, clean=0.2))
    write_jsonl(tmp_path / "test.jsonl", _comments(3, 3, toxic=0.5, clean=0.49))
    train, test = jigsaw.load(str(tmp_path))
    # non-toxic is scarce: keep all 10, floor(10 * 30 / 70) = 4 toxic
    assert _counts(train) == (4, 10)
    assert _counts(test) == (3, 3)  # 0.5 counts as toxic
    order = [int(e.text.split()[-1]) for e in train if e.label == 0]
    assert order == sorted(order)  # original order is kept


def test_jigsaw_balance_rule():
    ex = [Example(f"t{i}", 0) for i in range(7)] + [Example(f"n{i}", 1) for i in range(7)]
    assert _counts(jigsaw.balance(ex, (70, 30), "x")) == (3, 7)  # floor(7 * 30 / 70) = 3
    assert _counts(jigsaw.balance(ex, (50, 50), "x")) == (7, 7)
    assert jigsaw.balance(ex, (70, 30), "x") == jigsaw.balance(ex, (70, 30), "x")
    with pytest.raises(DataError, match="needs both toxic and non-toxic"):
        jigsaw.balance(ex[:7], (70, 30), "jigsaw-gen train split")


def test_jigsaw_bad_values(tmp_path):
    bad = write_csv(tmp_path / "bad.csv", [{"comment_text": "x", "toxic": "very"}])
    with pytest.raises(DataError, match=r"bad\.csv record 1: toxic must be"):
        jigsaw.load(str(bad))
    nolab = tmp_path / "nolab"
    write_csv(nolab / "train.csv", _comments(3, 7))
    write_csv(nolab / "test.csv", [{"id": "a", "comment_text": "x"}])
    with pytest.raises(DataError, match=r"test\.csv: missing column toxic"):
        jigsaw.load(str(nolab))


def test_jigsaw_without_data_path(no_hf):
    with pytest.raises(DataError, match="google/jigsaw_toxicity_pred.*task.data_path"):
        jigsaw.load(None)


# --- rtp-gen -----------------------------------------------------------------------------------

def _prompts(n):
    tox = [0.1, 0.7, None, 0.5]
    return [{"filename": f"f{i}", "prompt": {"text": f" prompt {i} ", "toxicity": tox[i % 4]},
             "continuation": {"text": "more", "toxicity": 0.0}} for i in range(n)]


def test_rtp_single_file_90_10(tmp_path):
    path = write_jsonl(tmp_path / "prompts.jsonl", _prompts(20))
    train, test = rtp.load(str(path))
    assert (len(train), len(test)) == (18, 2)
    by_text = {e.text: e.label for e in train + test}
    assert by_text["prompt 0"] == 1 and by_text["prompt 1"] == 0
    assert by_text["prompt 2"] is None and by_text["prompt 3"] == 0  # 0.5 is toxic
    assert rtp.load(str(path)) == (train, test)
    assert rtp.load(str(tmp_path)) == (train, test)


def test_rtp_folder_with_splits_and_parquet(tmp_path):
    write_parquet(tmp_path / "train.parquet", _prompts(8))
    write_jsonl(tmp_path / "test.jsonl", _prompts(4))
    train, test = rtp.load(str(tmp_path))
    assert [e.label for e in train] == [1, 0, None, 0] * 2
    assert [e.text for e in test] == [f"prompt {i}" for i in range(4)]


def test_rtp_bad_rows(tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "just text"}])
    with pytest.raises(DataError, match=r"bad\.jsonl record 1: prompt must be an object"):
        rtp.load(str(bad))
    bad_tox = write_jsonl(tmp_path / "tox.jsonl", [{"prompt": {"text": "x", "toxicity": "hi"}}])
    with pytest.raises(DataError, match=r"tox\.jsonl record 1: prompt toxicity must be"):
        rtp.load(str(bad_tox))


def test_rtp_without_data_path(no_hf):
    with pytest.raises(DataError, match="allenai/real-toxicity-prompts.*task.data_path"):
        rtp.load(None)


# --- registry and drugreview -------------------------------------------------------------------

def test_specs_registered():
    assert {"drugreview-sentiment", "imdb-gen", "jigsaw-gen", "rtp-gen"} <= set(task_names())
    budgets = {n: (get_spec(n).prompt_tokens, get_spec(n).new_tokens, get_spec(n).reward)
               for n in ("imdb-gen", "jigsaw-gen", "rtp-gen")}
    assert budgets == {"imdb-gen": (64, 48, "vader"), "jigsaw-gen": (8, 32, "non-toxicity"),
                       "rtp-gen": (32, 32, "non-toxicity")}
    assert get_spec("jigsaw-gen").label_names == ("toxic", "non-toxic")
    assert get_spec("imdb-gen").label_names == ("negative", "positive")


def test_drugreview_packaged_data():
    train, test = drugreview.load(None)
    assert 550 <= len(train) <= 650 and 340 <= len(test) <= 420
    assert {e.label for e in train + test} <= {0, 1, None}
    assert all(e.text and "<br" not in e.text for e in train + test)
