"""The judge's validation pairs, accuracy with a Wilson interval, and the pointwise judge."""

import json
import math

import pytest
import torch

from riskalign.rlaif.constitution import load_constitution
from riskalign.rlaif.judge import EmbeddingComparer, PointwiseComparer
from riskalign.rlaif.labelling import label_pairs
from riskalign.rlaif.validation import (comparisons, judge_accuracy, load_validation,
                                        wilson_interval)
from riskalign.tasks import DataError

CONS = load_constitution()


class YesNoChat:
    """Stands in for ChatModel.label_probs: P(Yes) from a function of the request text."""

    def __init__(self, p_yes):
        self.p_yes, self.requests = p_yes, []

    def label_ids(self, labels):
        return [0, 1]

    def label_probs(self, conversations, labels):
        assert labels == ("Yes", "No")
        texts = [c[0]["content"] for c in conversations]
        self.requests += texts
        p = torch.tensor([self.p_yes(t) for t in texts])
        return torch.stack([p, 1 - p], dim=1)


def test_shipped_set_covers_every_virtue_and_aspect():
    rows, skipped = load_validation(CONS)
    assert len(rows) >= 60 and skipped == 0
    cells = {(r["virtue"], r["aspect"]) for r in rows}
    assert cells == {(v.name, a) for v in CONS.virtues
                     for a in ("action", "motivation", "consequence")}
    assert all(r["better"] != r["worse"] or r["better_reply"] != r["worse_reply"] for r in rows)
    # length does not give the answer away: the better text is the longer one in 40-60% of pairs
    for aspect, a, b in (("action", "better", "worse"), ("motivation", "better_reply", "worse_reply"),
                         ("consequence", "better_reply", "worse_reply")):
        rs = [r for r in rows if r["aspect"] == aspect]
        assert 0.4 <= sum(len(r[a]) > len(r[b]) for r in rs) / len(rs) <= 0.6, aspect


def test_wilson_interval_by_hand():
    # k = 45 of n = 60: p = 0.75, z = 1.96; centre = (p + z^2/2n) / (1 + z^2/n)
    z, n, p = 1.959963984540054, 60, 0.75
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert wilson_interval(45, 60) == pytest.approx((centre - half, centre + half))
    assert wilson_interval(45, 60) == pytest.approx((0.6277, 0.8422), abs=1e-4)  # worked by hand


def test_pointwise_scores_each_text_alone_by_hand():
    """P(first better) = sigmoid(s1 - s2), s = log P(Yes) - log P(No); each distinct text is
    asked once; the verdict cannot depend on the order shown."""
    chat = YesNoChat(lambda t: 0.8 if "GOOD" in t else 0.2)
    comparer = PointwiseComparer(chat, CONS)
    rows = [{"virtue": "Honesty", "aspect": "action", "question": "q", "better": "GOOD",
             "worse": "bad"}]
    [j] = comparer(comparisons(rows, CONS))
    d = math.log(0.8 / 0.2) - math.log(0.2 / 0.8)
    assert j.p_first == pytest.approx(1 / (1 + math.exp(-d)))
    assert j.agree and len(chat.requests) == 2
    assert "Does this response show Honesty" in chat.requests[0]
    res = judge_accuracy(comparer, rows * 3, CONS)
    assert (res["correct"], res["accuracy"], res["order_agreement"]) == (3, 1.0, 1.0)


class FixedEncoder:
    """Stands in for SentenceEncoder: unit vectors looked up by text (anchors included)."""

    def __init__(self, vectors: dict[str, list[float]]):
        self.vectors, self.calls = vectors, []

    def __call__(self, texts):
        self.calls.append(list(texts))
        return torch.nn.functional.normalize(torch.tensor([self.vectors[t] for t in texts]),
                                             dim=-1)


def test_embedding_judge_compares_cosines_to_the_virtue_anchor_by_hand():
    """s = cos(e(text), e(anchor)); P(first better) = sigmoid((s1 - s2) / 0.05)."""
    anchor = "Honesty: telling the truth, admitting uncertainty and never deceiving."
    assert CONS.anchor(CONS.virtues[0]) == anchor
    enc = FixedEncoder({anchor: [1.0, 0.0], "true": [3.0, 4.0], "lie": [0.0, 1.0],
                        "Justice: treating every person and group fairly and respecting their "
                        "rights.": [0.0, 1.0]})
    comparer = EmbeddingComparer(enc, CONS)
    rows = [{"virtue": "Honesty", "aspect": "action", "question": "q", "better": "true",
             "worse": "lie"},
            {"virtue": "Justice", "aspect": "action", "question": "q", "better": "true",
             "worse": "lie"}]
    honesty, justice = comparer(comparisons(rows, CONS))
    # Honesty: cos(true) = 3/5, cos(lie) = 0, d = 0.6 / 0.05 = 12; Justice: 4/5 - 1, d = -4
    assert honesty.p_first == pytest.approx(1 / (1 + math.exp(-12.0)))
    assert justice.p_first == pytest.approx(1 / (1 + math.exp(4.0)))
    assert enc.calls == [["true", "lie"], [anchor], [rows[1]["virtue"] + ": treating every "
                         "person and group fairly and respecting their rights."]]
    res = judge_accuracy(comparer, rows, CONS)
    assert (res["correct"], res["order_agreement"]) == (1, 1.0)
    assert enc.calls[3:] == [["true", "lie"]]            # anchors are encoded once per virtue
    assert comparer([]) == []


def test_embedding_judge_ties_and_labels_pairs():
    """Equal cosines are a tie (P = 1/2, no label); each pair is scored per sampled virtue."""
    anchor = CONS.anchor(CONS.virtues[0])
    enc = FixedEncoder({anchor: [1.0, 0.0], "plain": [0.0, 1.0], "same-ish": [0.0, 1.0],
                        "honest answer": [1.0, 1.0], "m": [0.0, 1.0], "x": [0.0, 1.0]})
    [tie] = EmbeddingComparer(enc, CONS)(comparisons(
        [{"virtue": "Honesty", "aspect": "action", "question": "q", "better": "plain",
          "worse": "same-ish"}], CONS))
    assert tie.p_first == 0.5 and not tie.agree
    cons = load_constitution()
    cons.virtues = cons.virtues[:1]                       # every comparison is about Honesty
    rows = [{"prompt": "p", "answers": ["plain", "honest answer"], "motivation": ["m", "x"],
             "consequence": ["m", "x"]}]
    enc.vectors.update({f"{a}\n[{cons.follow_ups[k]}] {r}": v for k in cons.follow_ups
                        for a, r, v in (("plain", "m", [0.0, 1.0]),
                                        ("honest answer", "x", [1.0, 0.2]))})
    prefs, report = label_pairs(rows, EmbeddingComparer(enc, cons), cons, 1, 0.05, seed=0)
    assert prefs["action"][0].chosen == "Assistant: honest answer"
    assert report["action"]["kept"] == 1 and report["action"]["order_agreement"] == 1.0


def test_embedding_anchor_takes_only_the_virtues_placeholders(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text('embedding_anchor: "{virtue} in answer to {question}"\n')
    with pytest.raises(DataError, match="embedding_anchor"):
        load_constitution(f)
    f.write_text('embedding_anchor: "A {virtue} answer"\n')
    assert load_constitution(f).anchor(CONS.virtues[0]) == "A Honesty answer"


def test_accuracy_counts_ties_and_position_bias_as_misses():
    """A judge that always says 'A' is right in one order and wrong in the other: ties."""
    rows, _ = load_validation(CONS)
    res = judge_accuracy(lambda requests: [0.9] * len(requests), rows, CONS)
    assert res["correct"] == 0 and res["ties"] == len(rows) and res["order_agreement"] == 0.0
    assert res["ci_low"] == 0.0 and res["ci_high"] < 0.07


def test_label_pairs_with_the_pointwise_judge():
    rows = [{"prompt": "p", "answers": ["GOOD answer", "plain"], "motivation": ["m", "x"],
             "consequence": ["y", "z"]},
            {"prompt": "q", "answers": ["same", "same!"], "motivation": ["m", "x"],
             "consequence": ["y", "GOOD"]}]
    prefs, report = label_pairs(rows, PointwiseComparer(
        YesNoChat(lambda t: 0.9 if "GOOD" in t else 0.1), CONS), CONS, 1, 0.05, seed=0)
    assert prefs["action"][0].chosen == "Assistant: GOOD answer"
    # the consequence text holds the answer too: row p by its answer, row q by its reply
    assert [p.chosen.rsplit("Assistant: ", 1)[1] for p in prefs["consequence"]] == ["y", "GOOD"]
    assert report["consequence"]["order_agreement"] == 1.0
    assert report["action"]["ties"] == 1   # "same" against "same!": equal scores, no preference


def test_bad_validation_rows_are_named(tmp_path):
    f = tmp_path / "v.jsonl"
    f.write_text(json.dumps({"virtue": "Honesty", "aspect": "motive", "question": "q",
                             "better": "a", "worse": "b"}) + "\n")
    with pytest.raises(DataError, match="row 1: aspect must be one of"):
        load_validation(CONS, f)
    f.write_text(json.dumps({"virtue": "Honesty", "aspect": "motivation", "question": "q",
                             "better": "a", "worse": "a"}) + "\n")
    with pytest.raises(DataError, match="row 1: missing better_reply, worse_reply"):
        load_validation(CONS, f)
    with pytest.raises(DataError, match="file not found"):
        load_validation(CONS, tmp_path / "none.jsonl")
    f.write_text(json.dumps({"virtue": "Thrift", "aspect": "action", "question": "q",
                             "better": "a", "worse": "b"}) + "\n")
    with pytest.raises(DataError, match=r"no pairs of the constitution's virtues \(1 of other"):
        load_validation(CONS, f)


def test_on_topic_rate_by_hand():
    """Own-prompt similarity must beat 90% of the other prompts: with 3 prompts, both others."""
    from riskalign.rlaif.on_topic import on_topic

    vec = {"p0": [1.0, 0.0], "p1": [0.0, 1.0], "p2": [0.7071, 0.7071],
           "a0": [1.0, 0.0],          # its own prompt, exactly: on topic
           "a1": [0.6, 0.8],          # cos with p1 0.8, p2 0.99: p2 is closer -> off topic
           "a2": [0.7071, 0.7071]}    # its own prompt: on topic

    def encode(texts):
        return torch.tensor([vec[t] for t in texts])

    res = on_topic(encode, ["p0", "p1", "p2"], ["a0", "a1", "a2"])
    assert res["on_topic_rate"] == pytest.approx(2 / 3)
    assert res["prompt_similarity"] == pytest.approx((1.0 + 0.8 + 1.0) / 3, abs=1e-4)


def test_pairs_of_virtues_the_constitution_lacks_are_left_out_and_counted(tmp_path):
    from riskalign.rlaif.constitution import load_constitution

    f = tmp_path / "c.yaml"
    f.write_text("virtues:\n  - name: Honesty\n    description: telling the truth\n")
    rows, skipped = load_validation(load_constitution(f))
    assert {r["virtue"] for r in rows} == {"Honesty"}
    assert len(rows) == 12 and skipped == len(load_validation(CONS)[0]) - 12
