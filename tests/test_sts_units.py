"""task sts pieces: label transforms, teacher averaging, correlations against scipy, scores both orders."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bicross.errors import InputError
from bicross.sts.evaluate import correlations
from bicross.sts.labels import gold_labels, mean_scores, transform_labels


def test_clip_sends_negative_cosines_to_zero_and_keeps_the_rest():
    y = transform_labels(np.array([-0.4, 0.0, 0.3, 0.99, 1.2]), "clip")
    np.testing.assert_allclose(y, [0.0, 0.0, 0.3, 0.99, 1.0], rtol=1e-6)


def test_minmax_rescales_the_observed_range():
    np.testing.assert_allclose(transform_labels(np.array([0.2, 0.4, 0.6]), "minmax"), [0.0, 0.5, 1.0], atol=1e-6)


def test_sharpen_keeps_the_ends_and_pushes_away_from_the_middle():
    y = transform_labels(np.array([0.0, 0.25, 0.5, 0.75, 1.0]), "none", sharpen=8.0)
    assert y[0] == pytest.approx(0.0, abs=1e-6) and y[-1] == pytest.approx(1.0, abs=1e-6)
    assert y[2] == pytest.approx(0.5, abs=1e-6)
    assert y[1] < 0.25 and y[3] > 0.75  # by hand: (sigmoid(-2) - sigmoid(-4)) / (sigmoid(4) - sigmoid(-4))
    by_hand = (1 / (1 + np.exp(2)) - 1 / (1 + np.exp(4))) / (1 / (1 + np.exp(-4)) - 1 / (1 + np.exp(4)))
    assert y[1] == pytest.approx(by_hand, rel=1e-5)


def test_unknown_transform_is_an_error():
    with pytest.raises(ValueError, match="clip"):
        transform_labels(np.array([0.1]), "square")


def test_unknown_bi_loss_is_a_config_error():
    from bicross.errors import ConfigError
    from bicross.train import sts_bi, sts_cross

    with pytest.raises(ConfigError, match="mse or cosent"):
        sts_bi.Hparams.from_dict({"loss": "kl"})
    with pytest.raises(ConfigError, match="bce, mse or cosent"):
        sts_cross.Hparams.from_dict({"loss": "kl"})


def _scores(path, ids, values):
    pq.write_table(pa.table({"pair_id": ids, "score": pa.array(values, pa.float32())}), path)
    return str(path)


def test_mean_scores_averages_teachers_by_pair_id(tmp_path):
    a = _scores(tmp_path / "a.parquet", ["p1", "p2", "p3"], [0.2, 0.4, 0.6])
    b = _scores(tmp_path / "b.parquet", ["p3", "p1", "p2"], [1.0, 0.0, 0.8])  # another order
    ids, mean = mean_scores([a, b], ["p1", "p2", "p3"])
    assert ids == ["p1", "p2", "p3"]
    np.testing.assert_allclose(mean, [0.1, 0.6, 0.8], rtol=1e-6)


def test_mean_scores_weights_each_teacher(tmp_path):
    """sts.bi_self_weight: a weighted mean, one weight per file, checked before any file is read."""
    a = _scores(tmp_path / "a.parquet", ["p1", "p2"], [0.2, 0.4])
    b = _scores(tmp_path / "b.parquet", ["p2", "p1"], [1.0, 0.0])
    _, mixed = mean_scores([a, b], ["p1", "p2"], weights=[0.25, 0.75])
    np.testing.assert_allclose(mixed, [0.05, 0.85], rtol=1e-6)
    for bad in ([0.5], [0.5, 0.6], [1.5, -0.5]):
        with pytest.raises(ValueError, match="label weights"):
            mean_scores([a, b], weights=bad)


def test_mean_scores_names_the_file_missing_a_pair(tmp_path):
    a = _scores(tmp_path / "a.parquet", ["p1", "p2"], [0.2, 0.4])
    b = _scores(tmp_path / "b.parquet", ["p1"], [0.0])
    with pytest.raises(InputError, match="b.parquet"):
        mean_scores([a, b])


def test_correlations_match_scipy_with_ties_and_skip_unlabelled():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 6, 200).astype(float)  # many ties, as STS gold scores have
    pred = gold + rng.normal(0, 1.5, 200)
    pred[:20] = np.round(pred[:20])  # ties in the predictions too
    labelled = list(gold) + [None, None]
    m = correlations(list(pred) + [9.0, -9.0], labelled)
    assert m["num_pairs"] == 200
    assert m["spearman"] == pytest.approx(100 * stats.spearmanr(pred, gold).statistic, abs=1e-9)
    assert m["pearson"] == pytest.approx(100 * stats.pearsonr(pred, gold).statistic, abs=1e-9)


def test_gold_labels_scales_labelled_pairs_only(tmp_path):
    from bicross.schemas import PAIRS

    table = pa.table({"pair_id": ["a", "b", "c"], "text_a": ["x", "y", "z"], "text_b": ["u", "v", "w"],
                      "gold": pa.array([5.0, None, 2.5], pa.float32())}, schema=PAIRS)
    pq.write_table(table, tmp_path / "train.parquet")
    n = gold_labels(str(tmp_path / "train.parquet"), tmp_path / "pairs.parquet", tmp_path / "labels.parquet")
    assert n == 2
    assert pq.read_table(tmp_path / "pairs.parquet").column_names == ["pair_id", "text_a", "text_b"]
    assert pq.read_table(tmp_path / "labels.parquet").to_pylist() == [
        {"pair_id": "a", "score": 1.0}, {"pair_id": "c", "score": 0.5}]


def test_cross_score_is_symmetric_mean_of_both_orders(tiny_cross_init, tmp_path):
    import torch

    from bicross.score import CrossEncoder
    from bicross.sts.score import cross_symmetric
    fresh = CrossEncoder.for_training(str(tiny_cross_init))  # a new 1-logit head
    fresh.model.save_pretrained(tmp_path)
    fresh.tokenizer.save_pretrained(tmp_path)
    cross = CrossEncoder(str(tmp_path))
    a, b = ["alpha beta gamma", "river stone"], ["delta", "cloud forest garden"]
    kw = {"max_length": 32, "batch_size": 4, "device": torch.device("cpu"), "dtype": torch.float32}
    ab = cross_symmetric(cross, a, b, **kw)
    ba = cross_symmetric(cross, b, a, **kw)
    np.testing.assert_allclose(ab, ba, rtol=1e-6)
    assert ((ab > 0) & (ab < 1)).all()
