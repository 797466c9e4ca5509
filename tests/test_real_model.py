"""Real models on real data: the packaged all-MiniLM-L6-v2 on SciFact reproduces the published zero-shot
figure; the installed all-mpnet-base-v2 (`bicross models install`) on STS Benchmark test its reference."""

from __future__ import annotations

import json

import pytest
from conftest import MPNET, installed_mpnet, shared_data

from bicross import pipeline


@pytest.mark.slow
def test_minilm_fp32_scifact_ndcg10(tmp_path):
    cfg = {"format": "beir", "path": str(shared_data("scifact")), "splits": ["test"]}
    model = "sentence-transformers/all-MiniLM-L6-v2"
    data, tok = tmp_path / "data", tmp_path / "tokens"
    pipeline.prepare_data(cfg, str(data))
    pipeline.tokenize(model, data / "corpus.parquet", {"test": data / "queries" / "test.parquet"}, 256, 256,
                      tok / "corpus.parquet", {"test": tok / "test.parquet"})
    shards = []
    for s in range(2):  # two shards: the merged search must equal one exact search
        shards.append(tmp_path / f"shard-{s}.parquet")
        pipeline.encode(model, tok / "corpus.parquet", shards[-1], precision="fp32", batch_size=32,
                        shard=s, shards=2)
    pipeline.encode(model, tok / "test.parquet", tmp_path / "q.parquet", precision="fp32", id_column="qid")
    pipeline.retrieve(tmp_path / "q.parquet", shards, 100, tmp_path / "run.parquet")
    metrics = pipeline.evaluate_run(tmp_path / "run.parquet", data / "qrels" / "test.parquet",
                                    tmp_path / "m.json", iteration=0, encoder="bi", split="test")
    assert metrics["ndcg@10"] == pytest.approx(0.645, abs=0.005)
    assert metrics["recall@100"] == pytest.approx(0.925, abs=0.01)
    assert json.loads((tmp_path / "m.json").read_text())["metrics"]["ndcg@10"] == metrics["ndcg@10"]


@pytest.mark.slow
def test_mpnet_stsb_test_spearman():
    """Loaded by its hub name (resolved to the model cache), precision auto: bf16 autocast on a CPU with
    bf16 hardware. Measured here: 83.42 in bf16 and in fp32 (max length 64 or 384 alike)."""
    import torch

    from bicross import devices
    from bicross.data.sts import load_pairs
    from bicross.models import load_bi_encoder, resolve_model_path
    from bicross.sts.evaluate import correlations
    from bicross.sts.score import bi_cosines

    assert resolve_model_path(MPNET) == str(installed_mpnet())
    test = load_pairs({"format": "stsb", "path": str(shared_data("stsbenchmark")), "splits": ["test"]})["test"]
    encoder = load_bi_encoder(MPNET)
    device = torch.device("cpu")
    cosines = bi_cosines(encoder, test.column("text_a").to_pylist(), test.column("text_b").to_pylist(),
                         max_length=64, batch_size=64, device=device,
                         dtype=devices.resolve_precision("auto", device))
    metrics = correlations(cosines, test.column("gold").to_pylist())
    assert metrics["num_pairs"] == 1379
    assert metrics["spearman"] == pytest.approx(83.43, abs=0.3)
