"""Bi-encoder distillation: groups from teacher scores, a saved model that loads as a
SentenceTransformer with its pooling, and resume after a kill with identical weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from bicross.schemas import QRELS, TEACHER, write_table
from bicross.train.distill import TeacherGroups

HP = {"group_size": 4, "batch_size": 4, "max_steps": 5, "checkpoint_every": 2, "learning_rate": 1e-3,
      "precision": "fp32", "query_max_length": 16, "doc_max_length": 48, "seed": 3}


@pytest.fixture(scope="module")
def distill_data(tiny_cross_data, tmp_path_factory):
    """Teacher scores for every (query, positive or negative) of the tiny cross data; qrels from its positives."""
    root = tmp_path_factory.mktemp("distill")
    rng = np.random.default_rng(0)
    neg = pq.read_table(tiny_cross_data["negatives"]).to_pylist()
    teacher, qrels = [], []
    for row in neg:
        for d in row["positives"]:
            qrels.append({"qid": row["qid"], "docid": d, "relevance": 1})
            teacher.append({"qid": row["qid"], "docid": d, "score": float(rng.normal(3, 1))})
        for d in row["negatives"]:
            teacher.append({"qid": row["qid"], "docid": d, "score": float(rng.normal(0, 1))})
    write_table(pa.Table.from_pylist(teacher, schema=TEACHER), root / "teacher.parquet")
    write_table(pa.Table.from_pylist(qrels, schema=QRELS), root / "qrels.parquet")
    return {**tiny_cross_data, "teacher": root / "teacher.parquet", "qrels": root / "qrels.parquet"}


def test_groups_put_a_positive_first_with_its_teacher_scores(distill_data):
    data = TeacherGroups(distill_data["teacher"], distill_data["qrels"], distill_data["queries"],
                         distill_data["corpus"], group_size=4, seed=1)
    assert len(data) == 17 and data.skipped == 1  # the query without a positive trains nothing
    teacher = pq.read_table(distill_data["teacher"]).to_pylist()
    positives = {(r["qid"], r["docid"]) for r in pq.read_table(distill_data["qrels"]).to_pylist()}
    for i in range(len(data)):
        _, _, scores = data[i]
        assert scores.shape == (4,)
    # the first entry of every group is a qrels positive: its score comes from a positive's row
    pos_scores = {np.float32(r["score"]) for r in teacher if (r["qid"], r["docid"]) in positives}
    assert all(data[i][2][0] in pos_scores for i in range(len(data)))


def _run(data, out, hp, model, extra=(), check=True):
    cmd = [sys.executable, "-m", "bicross.train", "distill", "--teacher", str(data["teacher"]), "--qrels",
           str(data["qrels"]), "--queries", str(data["queries"]), "--corpus", str(data["corpus"]),
           "--out", str(out), "--checkpoints", f"{out}.checkpoints", "--log", f"{out}.log",
           "--hparams", json.dumps({**hp, "model": str(model)}), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr[-5000:])
    return proc


def test_distilled_model_loads_and_resume_matches(distill_data, tiny_cross_init, tmp_path):
    tiny_model = tiny_cross_init  # a BERT without dropout: resumed and uninterrupted runs see the same numbers
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer

    ref = tmp_path / "ref"
    _run(distill_data, ref, HP, tiny_model)
    st = SentenceTransformer(str(ref), device="cpu")
    emb = st.encode(["alpha beta", "gamma"])
    assert emb.shape == (2, 32) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)  # normalised
    history = [loss for _, loss in json.loads((ref / "training.json").read_text())["history"]]
    assert len(history) == 5 and all(np.isfinite(history))
    assert not torch.equal(load_file(ref / "model.safetensors")["embeddings.word_embeddings.weight"],
                           load_file(Path(tiny_model) / "model.safetensors")["embeddings.word_embeddings.weight"])

    out = tmp_path / "resumed"
    assert _run(distill_data, out, HP, tiny_model, extra=["--stop-after-steps", "3"], check=False).returncode != 0
    assert not out.exists() and (Path(f"{out}.checkpoints") / "step-2").is_dir()
    _run(distill_data, out, HP, tiny_model)
    assert "resuming from step 2" in Path(f"{out}.log").read_text()
    a, b = load_file(ref / "model.safetensors"), load_file(out / "model.safetensors")
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6), name


def test_margin_mse_option_trains(distill_data, tiny_model, tmp_path):
    _run(distill_data, tmp_path / "m", {**HP, "loss": "margin_mse", "max_steps": 2}, tiny_model)
    assert (tmp_path / "m" / "modules.json").is_file()
