"""Shared fixtures: a tiny random bi-encoder built from a config, tiny BEIR data, the real data folder."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(name: str) -> Path:
    """A dataset folder from ../shared/data, or a skip with the reason (a user's clone has none)."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real data {path} is absent (it sits beside the project only on dev machines and CI)")
    return path


def modules_imported_by(code: str, *modules: str) -> dict[str, bool]:
    """Run `code` in a fresh Python process (it must succeed) and say which of `modules` it imported."""
    import subprocess
    import sys

    probe = code + f"\nimport sys\nprint(*[m in sys.modules for m in {list(modules)!r}])\n"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(zip(modules, [word == "True" for word in proc.stdout.split()[-len(modules):]], strict=True))


def save_tiny_bi_encoder(out: Path, seed: int = 0, pooling: str = "mean") -> Path:
    """A 2-layer, 32-dim random BERT with the packaged MiniLM's tokenizer, in sentence-transformers layout."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from bicross.models import resolve_model_path

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("sentence-transformers/all-MiniLM-L6-v2"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (out / "modules.json").write_text(json.dumps(modules))
    (out / "1_Pooling").mkdir(exist_ok=True)
    (out / "2_Normalize").mkdir(exist_ok=True)
    (out / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": 32,
        "pooling_mode_cls_token": pooling == "cls",
        "pooling_mode_mean_tokens": pooling == "mean",
    }))
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128}))
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return save_tiny_bi_encoder(tmp_path_factory.mktemp("tiny-bi"))


MPNET = "sentence-transformers/all-mpnet-base-v2"


def installed_mpnet() -> Path:
    """The real MPNet's folder in the model cache, or a skip saying how to install it."""
    from bicross.model_cache import install_command, installed_path, lookup

    folder = installed_path(MPNET)
    if folder is None:
        pytest.skip(f"{MPNET} is not installed (`{install_command(lookup(MPNET))}`; CI's .ci/run does it)")
    return folder


@pytest.fixture(scope="session")
def mpnet_tokenizer_dir() -> Path:
    """A folder the real MPNet tokenizer loads from (the installed model's), to build tiny MPNets with."""
    return installed_mpnet()


def save_tiny_mpnet(out: Path, tokenizer_dir: Path, seed: int = 0, cross: bool = False) -> Path:
    """A 2-layer, 32-dim random MPNet with the real MPNet tokenizer: in sentence-transformers layout (mean
    pooling, normalised) as a bi-encoder, or with `cross` a 1-logit sequence-classification model."""
    import torch
    from transformers import AutoTokenizer, MPNetConfig, MPNetForSequenceClassification, MPNetModel

    from bicross.models import PoolingConfig, save_bi_encoder

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = MPNetConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=514, pad_token_id=tokenizer.pad_token_id,
                         num_labels=1)
    if cross:
        MPNetForSequenceClassification(config).save_pretrained(out)
        tokenizer.save_pretrained(out)
    else:
        save_bi_encoder(MPNetModel(config), tokenizer, PoolingConfig("mean", True, 128), out)
    return out


WORDS = ("alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega river stone cloud "
         "forest garden signal vector matrix kernel socket thread buffer parser").split()


def write_tiny_beir(root: Path, num_docs: int = 60, train: int = 12, test: int = 8, seed: int = 0,
                    extra: int = 0) -> Path:
    """A small BEIR folder: query i asks for a few words of document i, so retrieval is learnable.
    `extra`: a third split `extra` of that many queries, after test's (for a run that adds a split)."""
    rng = random.Random(seed)
    docs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40))) for _ in range(num_docs)]
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    with open(root / "corpus.jsonl", "w") as f:
        for i, text in enumerate(docs):
            f.write(json.dumps({"_id": f"d{i}", "title": f"title {i % 7}", "text": text}) + "\n")
    with open(root / "queries.jsonl", "w") as f:
        for i in range(train + test + extra):
            f.write(json.dumps({"_id": f"q{i}", "text": " ".join(docs[i].split()[:4])}) + "\n")
    splits = [("train", range(train)), ("test", range(train, train + test))]
    if extra:
        splits.append(("extra", range(train + test, train + test + extra)))
    for split, qids in splits:
        with open(root / "qrels" / f"{split}.tsv", "w") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for i in qids:
                f.write(f"q{i}\td{i}\t1\n")
    return root


@pytest.fixture
def tiny_beir(tmp_path) -> Path:
    return write_tiny_beir(tmp_path / "beir")


# --- cross-encoder training fixtures -----------------------------------------------------------------

def save_tiny_cross_init(out: Path, seed: int = 0, dropout: float = 0.0) -> Path:
    """A tiny random BERT (no head: a cross-encoder init gets a new 1-logit head) + the MiniLM tokenizer.

    Hidden dropout defaults to 0 so runs on 1 and 2 processes can be compared number for number.
    """
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from bicross.models import resolve_model_path

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("sentence-transformers/all-MiniLM-L6-v2"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=512,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def write_tiny_cross_data(root: Path, num_queries: int = 18, num_docs: int = 50, seed: int = 0) -> dict[str, Path]:
    """Token files (ids without special tokens) and a negatives file for cross-encoder training.

    Query i has positives [d{i}] (and d{i+1} when i is even) and 2..9 negatives; the last query has no
    positive (skipped by the trainer), so `num_queries - 1` queries train. Document d{i} repeats the
    tokens of query i, so the task is learnable.
    """
    import pyarrow as pa

    from bicross.schemas import NEGATIVES, TOKENS, write_table

    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    queries = [[rng.randint(1000, 1999) for _ in range(rng.randint(3, 9))] for _ in range(num_queries)]
    docs = []
    for i in range(num_docs):
        body = [rng.randint(2000, 2999) for _ in range(rng.randint(5, 60))]
        docs.append((queries[i] if i < num_queries else []) + body)
    paths = {"queries": root / "queries.parquet", "corpus": root / "corpus.parquet",
             "negatives": root / "negatives.parquet"}
    write_table(pa.table({"id": [f"q{i}" for i in range(num_queries)], "input_ids": queries}),
                paths["queries"], TOKENS)
    write_table(pa.table({"id": [f"d{i}" for i in range(num_docs)], "input_ids": docs}), paths["corpus"], TOKENS)
    rows = {"qid": [], "positives": [], "negatives": []}
    for i in range(num_queries):
        positives = [] if i == num_queries - 1 else [f"d{i}"] + ([f"d{i + 1}"] if i % 2 == 0 else [])
        pool = [f"d{j}" for j in range(num_docs) if f"d{j}" not in positives]
        rows["qid"].append(f"q{i}")
        rows["positives"].append(positives)
        rows["negatives"].append(rng.sample(pool, 2 + i % 8))
    write_table(pa.table(rows), paths["negatives"], NEGATIVES)
    return paths


@pytest.fixture(scope="session")
def tiny_cross(tmp_path_factory) -> str:
    """A tiny random cross-encoder (a 1-logit BERT) with the packaged MiniLM's tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from bicross.models import resolve_model_path

    out = tmp_path_factory.mktemp("tiny-cross")
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(resolve_model_path("sentence-transformers/all-MiniLM-L6-v2"))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, num_labels=1)
    BertForSequenceClassification(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def write_scoring_files(root: Path, num_queries: int = 4):
    """Token files of 30 documents and `num_queries` queries, a run of each query's 10 candidates, and
    qrels: q0 has a positive the run misses (d29) and one at rank 1 (d0); q1 has only a non-relevant."""
    import numpy as np
    import pyarrow as pa

    from bicross.schemas import QRELS, RUN, TOKENS, write_table

    rng = np.random.default_rng(0)
    docs = {f"d{i}": rng.integers(1000, 5000, size=rng.integers(3, 30)).tolist() for i in range(30)}
    queries = {f"q{i}": rng.integers(1000, 5000, size=rng.integers(2, 8)).tolist() for i in range(num_queries)}
    write_table(pa.table({"id": list(docs), "input_ids": list(docs.values())}), root / "corpus.tok", TOKENS)
    write_table(pa.table({"id": list(queries), "input_ids": list(queries.values())}), root / "q.tok", TOKENS)
    run = [{"qid": q, "docid": f"d{(3 * j + int(q[1:])) % 30}", "rank": j + 1, "score": float(10 - j)}
           for q in queries for j in range(10)]
    write_table(pa.Table.from_pylist(run, schema=RUN), root / "run.parquet")
    qrels = [{"qid": "q0", "docid": "d29", "relevance": 1},   # not retrieved: must still be scored
             {"qid": "q0", "docid": "d0", "relevance": 1},    # retrieved at rank 1
             {"qid": "q1", "docid": "d1", "relevance": 0}]    # no positive: q1 trains nothing
    write_table(pa.Table.from_pylist(qrels, schema=QRELS), root / "qrels.parquet")
    return root, docs, queries


@pytest.fixture(scope="session")
def tiny_cross_init(tmp_path_factory) -> Path:
    return save_tiny_cross_init(tmp_path_factory.mktemp("tiny-cross-init"))


@pytest.fixture(scope="session")
def tiny_cross_data(tmp_path_factory) -> dict[str, Path]:
    return write_tiny_cross_data(tmp_path_factory.mktemp("tiny-cross-data"))
