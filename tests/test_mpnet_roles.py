"""MPNet (the second real family) in every role, on tiny random MPNets with the real MPNet tokenizer:
bi-encoder 0 and the distilled bi-encoder, the cross-encoder (a new 1-logit head, pair template
`<s> a </s></s> b </s>`, no token type ids), both STS trainers, and families mixed in one run."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from conftest import save_tiny_bi_encoder, save_tiny_mpnet, write_tiny_beir
from test_sts_workflow import sts_config, write_tiny_stsb
from workflow_utils import snakemake, write_config


def retrieval_config(bi, cross, beir):
    return {
        "experiment": "mixed", "iterations": 1,
        "dataset": {"format": "beir", "path": str(beir), "splits": ["train", "test"]},
        "bi_encoder": {"model": str(bi)},
        "tokenize": {"query_max_length": 16, "doc_max_length": 48},
        "encode": {"batch_size": 8, "precision": "fp32"},
        "retrieve": {"depth": 20},
        "mine": {"rank_start": 2, "rank_end": 20, "negatives_per_query": 4},
        "cross_encoder": {"model": str(cross), "train_group_size": 4, "batch_size": 2, "epochs": 1, "max_length": 64,
                          "precision": "fp32", "rerank_depth": 10, "teacher_depth": 8},
        "distill": {"group_size": 4, "batch_size": 4, "epochs": 1, "precision": "fp32"},
        "validation": {"split": None},  # no gate: tiny models, distil anyway (and no held-out split to run)
    }


def _trained(res, encoder):
    return json.loads((res / "iter1" / encoder / "model" / "training.json").read_text())


# the fast suite runs the mixed pair; MPNet in every role of both tasks is in the slow one (2 min each here)
@pytest.mark.parametrize("bi_family,cross_family", [("bert", "mpnet"), pytest.param("mpnet", "mpnet", marks=pytest.mark.slow)])
def test_mpnet_in_the_retrieval_loop(tmp_path, mpnet_tokenizer_dir, bi_family, cross_family):
    """MiniLM-shaped bi-encoder taught by an MPNet cross-encoder (the mixed pair the family is for), and
    MPNet as bi-encoder 0, the distilled bi-encoder and the cross-encoder (from the bi-encoder's weights)."""
    from sentence_transformers import CrossEncoder, SentenceTransformer

    models = {"bert": save_tiny_bi_encoder(tmp_path / "bert"),
              "mpnet": save_tiny_mpnet(tmp_path / "mpnet", mpnet_tokenizer_dir)}
    bi, cross = models[bi_family], models[cross_family]
    config = retrieval_config(bi, cross, write_tiny_beir(tmp_path / "beir"))
    snakemake(tmp_path, write_config(tmp_path / "config.yaml", config))
    res = tmp_path / "results" / "mixed"
    rows = pq.read_table(res / "metrics.parquet").to_pylist()
    assert {(r["iteration"], r["encoder"]) for r in rows} >= {(0, "bi"), (1, "bi"), (1, "cross")}
    assert _trained(res, "cross")["learning"]["verdict"] in ("learned", "did not learn", "diverged")
    assert _trained(res, "cross")["hparams"]["model"] == str(cross)
    assert _trained(res, "bi")["hparams"]["model"] == str(bi)
    ce = CrossEncoder(str(res / "iter1" / "cross" / "model"))
    assert type(ce.model).__name__.startswith("MPNet") and ce.predict([("a b", "c d")]).shape == (1,)
    st = SentenceTransformer(str(res / "iter1" / "bi" / "model"))
    assert type(st[0].auto_model).__name__.startswith("MPNet" if bi_family == "mpnet" else "Bert")
    assert st.encode(["a b"]).shape == (1, 32)


@pytest.mark.slow
def test_mutual_trans_encoder_with_a_minilm_shaped_and_an_mpnet_family(tmp_path, mpnet_tokenizer_dir):
    """sts.mutual with two families of different architectures: both STS trainers run on MPNet, each
    direction's labels are both families' scores."""
    bert = save_tiny_bi_encoder(tmp_path / "bert")
    mpnet = save_tiny_mpnet(tmp_path / "mpnet", mpnet_tokenizer_dir, seed=1)
    data = write_tiny_stsb(tmp_path / "stsb", sizes=(("train", 24), ("dev", 12), ("test", 12)))
    config = sts_config(bert, data, iterations=1)
    config["sts"] = {"max_length": 16, "mutual": {"bi_model": str(mpnet), "cross_model": str(mpnet)}}
    snakemake(tmp_path, write_config(tmp_path / "config.yaml", config))
    res = tmp_path / "results" / "tinysts"
    rows = pq.read_table(res / "metrics.parquet").to_pylist()
    assert {(r["iteration"], r["encoder"]) for r in rows} == {
        (0, "bi"), (0, "bi_b"), (1, "bi"), (1, "bi_b"), (1, "cross"), (1, "cross_b")}
    for encoder, model in (("cross_b", mpnet), ("bi_b", mpnet), ("cross", bert)):
        trained = _trained(res, encoder)
        assert trained["hparams"]["model"] == str(model) and trained["steps"] > 0
    labels = (res / "logs" / "train_cross" / "iter1_b.log").read_text()
    assert "iter0/bi/scores/unlabelled.parquet" in labels and "iter0/bi_b/scores/unlabelled.parquet" in labels
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(res / "iter1" / "cross_b" / "model").model_type == "mpnet"
