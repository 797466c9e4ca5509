"""sts.augment: new training pairs from the training sentences only (nearest neighbours, random others)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from bicross.sts.augment import augment, training_sentences


def _pairs(rows):
    return pa.table({"pair_id": [f"train:{i}" for i in range(len(rows))], "text_a": [r[0] for r in rows],
                     "text_b": [r[1] for r in rows]})


# four sentences on a circle: s0 ~ s1 and s2 ~ s3 are close, the two groups far apart
ROWS = [("s0", "s2"), ("s1", "s3")]
EMB = np.array([[1.0, 0.0], [0.95, 0.31], [-1.0, 0.0], [-0.95, 0.31]], dtype=np.float32)
EMB /= np.linalg.norm(EMB, axis=1, keepdims=True)


def _keys(table):
    return [frozenset(p) for p in zip(table.column("text_a").to_pylist(), table.column("text_b").to_pylist(),
                                      strict=True)]


def test_sentences_in_first_seen_order():
    assert training_sentences(_pairs(ROWS)) == ["s0", "s2", "s1", "s3"]


def test_neighbours_pair_each_sentence_with_its_nearest_other_sentence():
    emb = EMB[[0, 2, 1, 3]]  # rows follow training_sentences order
    out = augment(_pairs(ROWS), emb, neighbours=1)
    assert out.slice(0, 2).to_pylist() == _pairs(ROWS).to_pylist()  # the originals first, unchanged
    new = _keys(out.slice(2))
    # s0's nearest is s1 and s1's nearest is s0: one pair, not two; same for s2 / s3
    assert sorted(map(sorted, new)) == [["s0", "s1"], ["s2", "s3"]]
    assert out.column("pair_id").to_pylist()[2:] == ["aug:nn:0", "aug:nn:1"]


def test_neighbours_skip_pairs_already_there_in_either_order():
    rows = [("s1", "s0"), ("s2", "s3")]  # the nearest pairs are already training pairs
    emb = EMB[[1, 0, 2, 3]]
    assert augment(_pairs(rows), emb, neighbours=1).num_rows == 2
    # second nearest, across the groups: s0 -> s3, s1 -> s3, s2 -> s1, s3 -> s1 (already added)
    new = _keys(augment(_pairs(rows), emb, neighbours=2).slice(2))
    assert sorted(map(sorted, new)) == [["s0", "s3"], ["s1", "s2"], ["s1", "s3"]]


def test_random_pairs_are_new_distinct_deterministic_and_never_self_pairs():
    rows = [(f"a{i}", f"b{i}") for i in range(30)]
    one = augment(_pairs(rows), None, random=2, seed=7)
    assert one.equals(augment(_pairs(rows), None, random=2, seed=7))
    assert not one.equals(augment(_pairs(rows), None, random=2, seed=8))
    keys = _keys(one)
    assert len(keys) == len(set(keys)) and all(len(k) == 2 for k in keys)
    assert 60 * 2 * 0.9 <= one.num_rows - 30 <= 60 * 2  # ~r per sentence (mutual draws are merged)
    assert all(i.startswith("aug:rand:") for i in one.column("pair_id").to_pylist()[30:])


def test_neighbours_need_one_embedding_per_sentence():
    with pytest.raises(ValueError, match="one embedding per training sentence"):
        augment(_pairs(ROWS), EMB[:3], neighbours=1)
