"""Cross-encoder training: groups and batches, the step plan, and real `accelerate launch` runs on CPU
(1 process vs 2 gloo processes, a killed run resumed from its checkpoint, loading the saved model)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from bicross.errors import ConfigError, InputError
from bicross.launch import free_port
from bicross.train.cross import CrossGroups, Hparams, PairCollator
from bicross.training import (
    TrainConfig,
    _FirstN,
    head_parameter_names,
    make_optimizer,
    make_plan,
    parameter_groups,
)

GROUP = 4


def _special():
    from transformers import AutoTokenizer

    from bicross.models import resolve_model_path
    from bicross.tokenize import SpecialTokens

    return SpecialTokens.probe(AutoTokenizer.from_pretrained(
        resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")))


def _groups(data_paths, group=GROUP, seed=7) -> CrossGroups:
    return CrossGroups(data_paths["negatives"], data_paths["queries"], data_paths["corpus"], group, seed)


def _table(path, key="id", value="input_ids") -> dict:
    t = pq.read_table(path).to_pydict()
    return dict(zip(t[key], t[value], strict=True))


# --------------------------------------------------------------------------------------------------
# groups and batches


def test_group_layout_on_real_batches(tiny_cross_data):
    data = _groups(tiny_cross_data)
    special = _special()
    negatives = pq.read_table(tiny_cross_data["negatives"]).to_pydict()
    pos = dict(zip(negatives["qid"], negatives["positives"], strict=True))
    neg = dict(zip(negatives["qid"], negatives["negatives"], strict=True))
    qtok, dtok = _table(tiny_cross_data["queries"]), _table(tiny_cross_data["corpus"])
    max_length = 40
    collate = PairCollator(data, special, max_length, {"input_ids", "attention_mask", "token_type_ids"})
    data.set_epoch(0)
    items = [data[i] for i in range(3)]
    batch = collate(items)
    assert batch["input_ids"].shape[0] == 3 * GROUP
    assert batch["input_ids"].shape[1] <= max_length
    for b, (q, docs) in enumerate(items):
        qid = data.qids[q]
        docids = [data.doc_ids[int(d)].as_py() for d in docs]
        assert docids[0] in pos[qid]  # positive at index 0
        assert all(d in neg[qid] for d in docids[1:])
        for j, docid in enumerate(docids):
            row = b * GROUP + j
            n = int(batch["attention_mask"][row].sum())
            ids, types = special.pair(qtok[qid], dtok[docid], max_length)
            assert batch["input_ids"][row, :n].tolist() == ids
            assert batch["token_type_ids"][row, :n].tolist() == types
            assert (batch["input_ids"][row, n:] == special.pad_id).all()
    # a model without token_type_ids gets none
    assert "token_type_ids" not in PairCollator(data, special, 40, {"input_ids", "attention_mask"})(items)


def test_sampling_is_deterministic_per_seed_and_epoch(tiny_cross_data):
    a, b = _groups(tiny_cross_data), _groups(tiny_cross_data)
    assert len(a) == 17 and a.skipped_no_positive == 1  # the last query has no positive
    a.set_epoch(0)
    b.set_epoch(0)
    first = [a[i] for i in range(len(a))]
    assert all(qa == qb and (da == db).all() for (qa, da), (qb, db) in zip(first, [b[i] for i in range(len(b))],
                                                                             strict=True))
    a.set_epoch(1)
    assert [q for q, _ in first] != [a[i][0] for i in range(len(a))]
    assert sorted(q for q, _ in first) == list(range(len(a)))  # each query once per epoch
    c = _groups(tiny_cross_data, seed=8)
    c.set_epoch(0)
    assert [q for q, _ in first] != [c[i][0] for i in range(len(c))]


def test_negatives_without_replacement_when_enough(tiny_cross_data):
    data = _groups(tiny_cross_data, group=4)
    negatives = pq.read_table(tiny_cross_data["negatives"]).to_pydict()
    count = dict(zip(negatives["qid"], map(len, negatives["negatives"]), strict=True))
    seen_repeat = False
    for epoch in range(3):
        data.set_epoch(epoch)
        for i in range(len(data)):
            q, docs = data[i]
            unique = len(set(docs[1:].tolist()))
            if count[data.qids[q]] >= 3:
                assert unique == 3
            else:  # 2 negatives for 3 slots: with replacement
                seen_repeat = True
                assert unique <= 2
    assert seen_repeat


def test_unknown_document_is_an_input_error(tiny_cross_data, tmp_path):
    import pyarrow as pa

    from bicross.schemas import NEGATIVES, write_table

    bad = tmp_path / "negatives.parquet"
    write_table(pa.table({"qid": ["q0"], "positives": [["d0"]], "negatives": [["nope"]]}), bad, NEGATIVES)
    with pytest.raises(InputError, match="nope"):
        CrossGroups(bad, tiny_cross_data["queries"], tiny_cross_data["corpus"], 4, 0)
    with pytest.raises(InputError, match="no such file"):
        CrossGroups(tmp_path / "missing.parquet", tiny_cross_data["queries"], tiny_cross_data["corpus"], 4, 0)


def test_hparams_defaults_and_typos():
    hp = Hparams.from_dict({"epochs": 1})
    assert hp.epochs == 1 and hp.train_group_size == 8 and hp.batch_size == 2
    assert hp.max_length == 192 and hp.attention_dropout == 0.0
    defaults = asdict(Hparams())
    import yaml
    from conftest import REPO

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    props = schema["properties"]["cross_encoder"]["properties"]
    for key in set(props) & set(defaults):  # what a user gets from the workflow and from the module alike
        assert defaults[key] == props[key]["default"], key
    assert defaults["checkpoint_every"] == 200 and defaults["precision"] == "auto"
    with pytest.raises(ConfigError, match="learnig_rate"):
        Hparams.from_dict({"learnig_rate": 1e-5})
    with pytest.raises(ConfigError):
        Hparams.from_dict({"train_group_size": 1})


# --------------------------------------------------------------------------------------------------
# plan, optimizer groups, sharding


def test_plan_whole_global_batches():
    plan = make_plan(17, TrainConfig(batch_size=2, gradient_accumulation=2, epochs=1.5, warmup_ratio=0.1), 2)
    assert plan.global_batch == 8 and plan.steps_per_epoch == 2 and plan.examples == 16 and plan.dropped == 1
    assert plan.batches_per_epoch == 4 and plan.total_steps == 3 and plan.warmup_steps == 1
    assert make_plan(17, TrainConfig(batch_size=4, max_steps=10), 1).total_steps == 10
    with pytest.raises(ConfigError, match="global batch"):
        make_plan(5, TrainConfig(batch_size=4), 2)


def test_no_weight_decay_on_bias_and_layer_norm(tiny_cross_init):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_cross_init, num_labels=1)
    groups = parameter_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in groups[0]["params"]}
    plain = {names[id(p)] for p in groups[1]["params"]}
    assert groups[0]["weight_decay"] == 0.01 and groups[1]["weight_decay"] == 0.0
    assert "bert.encoder.layer.0.attention.self.query.weight" in decayed
    assert "bert.embeddings.word_embeddings.weight" in decayed
    assert all(n.endswith("bias") or "LayerNorm" in n for n in plain)
    assert "bert.embeddings.LayerNorm.weight" in plain and "classifier.bias" in plain
    assert len(decayed) + len(plain) == len(names)


def test_head_learning_rate_only_for_the_new_head(tiny_cross_init):
    """head_learning_rate: the classification head (outside `bert.`) gets its own rate, the schedule
    scales it like the rest; unset, every parameter has learning_rate; a bare encoder has no head."""
    from transformers import AutoModel, AutoModelForSequenceClassification, get_linear_schedule_with_warmup

    model = AutoModelForSequenceClassification.from_pretrained(tiny_cross_init, num_labels=1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert head_parameter_names(model) == {"classifier.weight", "classifier.bias"}
    config = Hparams.from_dict({"learning_rate": 1e-4, "head_learning_rate": 1e-2})
    optimizer = make_optimizer(model, config, torch.device("cpu"))
    lr = {names[id(p)]: g["lr"] for g in optimizer.param_groups for p in g["params"]}
    decay = {names[id(p)]: g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert len(lr) == len(names)
    assert lr["classifier.weight"] == lr["classifier.bias"] == 1e-2
    assert lr["bert.pooler.dense.weight"] == lr["bert.encoder.layer.0.attention.self.query.weight"] == 1e-4
    assert decay["classifier.weight"] == 0.01 and decay["classifier.bias"] == 0.0
    scheduler = get_linear_schedule_with_warmup(optimizer, 2, 10)
    for _ in range(6):
        optimizer.step()
        scheduler.step()
    rates = {names[id(g["params"][0])].startswith("classifier"): g["lr"] for g in optimizer.param_groups}
    assert rates[True] == pytest.approx(100 * rates[False]) and rates[False] == pytest.approx(0.5e-4)
    plain = make_optimizer(model, TrainConfig(learning_rate=1e-4), torch.device("cpu"))
    assert {g["lr"] for g in plain.param_groups} == {1e-4} and len(plain.param_groups) == 2
    assert head_parameter_names(AutoModel.from_pretrained(tiny_cross_init)) == set()
    assert Hparams().head_learning_rate == 1e-2
    with pytest.raises(ConfigError, match="head_learning_rate"):
        TrainConfig(head_learning_rate=-1.0).validate()


@pytest.mark.parametrize("processes,batch,accumulation", [(2, 2, 1), (1, 2, 2), (2, 1, 2), (4, 1, 1)])
def test_every_layout_sees_the_same_groups_per_step(processes, batch, accumulation):
    """accelerate's shard of a sequential batch sampler: step s covers examples [s*global, (s+1)*global)."""
    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler

    global_batch = processes * batch * accumulation
    n = 4 * global_batch
    shards = [list(BatchSamplerShard(BatchSampler(_FirstN(n), batch, False), processes, p))
              for p in range(processes)]
    for step in range(4):
        seen = set()
        for shard in shards:
            for micro in shard[step * accumulation:(step + 1) * accumulation]:
                seen.update(micro)
        assert seen == set(range(step * global_batch, (step + 1) * global_batch))


# --------------------------------------------------------------------------------------------------
# real runs under accelerate launch (CPU; 2 processes = gloo)

STEPS = 8
BASE = {"batch_size": 4, "precision": "fp32", "max_steps": STEPS, "checkpoint_every": 2, "log_every": 1,
        "learning_rate": 1e-2, "warmup_ratio": 0.0, "train_group_size": 8, "max_length": 64, "seed": 3}


def _launch(data, init, out: Path, hparams: dict, processes: int = 1, extra=(), check=True):
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "--main_process_port", str(free_port())]
    cmd += ["--multi_gpu", "--num_processes", str(processes)] if processes > 1 else ["--cpu", "--num_processes", "1"]
    cmd += ["-m", "bicross.train", "cross", "--negatives", str(data["negatives"]), "--queries", str(data["queries"]),
            "--corpus", str(data["corpus"]), "--out", str(out), "--checkpoints", f"{out}.checkpoints",
            "--hparams", json.dumps({"model": str(init), **hparams}), "--log", f"{out}.log", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def _weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(out / "model.safetensors")


def _history(out: Path) -> list[float]:
    return [loss for _, loss in json.loads((out / "training.json").read_text())["history"]]


@pytest.fixture(scope="module")
def single_run(tiny_cross_data, tiny_cross_init, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single") / "model"
    out.mkdir()
    (out / "stale.txt").write_text("from an older run")  # replaced as a whole
    _launch(tiny_cross_data, tiny_cross_init, out, BASE)
    return out


def test_single_process_run_saves_one_model(single_run):
    files = sorted(p.name for p in single_run.iterdir())
    assert "model.safetensors" in files and "config.json" in files and "tokenizer.json" in files
    assert "stale.txt" not in files
    assert not Path(f"{single_run}.checkpoints").exists()  # removed after success
    assert [p.name for p in single_run.parent.iterdir() if p.name.startswith(".")] == []  # no temp left
    summary = json.loads((single_run / "training.json").read_text())
    assert summary["steps"] == STEPS and summary["num_processes"] == 1 and summary["pairs_per_second"] > 0
    assert summary["examples"] == STEPS * 4 * 8
    history = _history(single_run)
    assert len(history) == STEPS and abs(history[-1] - math.log(8)) > 1e-3  # it did learn something
    assert "training pairs/second" in Path(f"{single_run}.log").read_text()


def test_loss_table_has_every_step_with_its_learning_rate(single_run):
    """loss.parquet beside the weights: steps 1..N once each, the losses of training.json, and the rate
    each step applied (no warm-up here: linear decay from the peak, the scheduler's formula)."""
    from bicross.losscurve import read_loss_table

    table = read_loss_table(single_run / "loss.parquet").to_pydict()
    assert table["step"] == list(range(1, STEPS + 1))
    assert np.allclose(table["loss"], _history(single_run))
    peak = BASE["learning_rate"]
    assert np.allclose(table["learning_rate"], [peak * (STEPS - s) / STEPS for s in range(STEPS)])


def test_saved_model_carries_a_training_card(single_run):
    """README.md in the model folder: model-card front matter, the recipe, its hyperparameters and the
    bicross version; no metrics yet (they come after evaluation, from the workflow's model_cards)."""
    import yaml

    from bicross import __version__

    text = (single_run / "README.md").read_text()
    front = yaml.safe_load(text.split("---")[1])
    assert front["library_name"] == "sentence-transformers" and front["pipeline_tag"] == "text-ranking"
    assert "cross-encoder" in front["tags"] and "metrics" not in front
    assert "base_model" not in front  # a local folder is no hub id
    assert "`cross`: Retrieval cross-encoder (reranker)" in text and f"bicross version:** {__version__}" in text
    assert f"learning_rate: {BASE['learning_rate']}" in text and "Not evaluated yet" in text


def test_saved_model_loads_with_transformers_and_sentence_transformers(single_run):
    from sentence_transformers import CrossEncoder
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(single_run).eval()
    tokenizer = AutoTokenizer.from_pretrained(single_run)
    assert model.config.num_labels == 1
    pairs = [("alpha beta", "beta gamma delta"), ("river", "stone cloud")]
    enc = tokenizer([a for a, _ in pairs], [b for _, b in pairs], padding=True, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**enc).logits.view(-1).numpy()
    ce = CrossEncoder(str(single_run), device="cpu")
    scores = ce.predict(pairs, activation_fn=torch.nn.Identity())
    assert np.allclose(scores, logits, atol=1e-5)


@pytest.mark.parametrize("processes,batch,accumulation", [(2, 2, 1), (1, 2, 2)])
def test_same_global_batch_gives_the_same_training(single_run, tiny_cross_data, tiny_cross_init, tmp_path,
                                                   processes, batch, accumulation):
    """1 process x batch 4 == 2 gloo processes x batch 2 == 1 process x batch 2 x accumulation 2."""
    out = tmp_path / "model"
    _launch(tiny_cross_data, tiny_cross_init, out,
            {**BASE, "batch_size": batch, "gradient_accumulation": accumulation}, processes=processes)
    summary = json.loads((out / "training.json").read_text())
    assert summary["num_processes"] == processes
    assert summary["examples"] == STEPS * 4 * 8
    assert np.allclose(_history(out), _history(single_run), atol=5e-5, rtol=0)
    ref, got = _weights(single_run), _weights(out)
    assert ref.keys() == got.keys()
    for name in ref:
        if name == "classifier.bias":
            # the group softmax is shift-invariant: this bias's true gradient is 0, its float noise
            # (different summation order) is what Adam normalises to a full-size step
            continue
        assert torch.allclose(ref[name], got[name], atol=1e-3, rtol=0), name


def test_killed_run_resumes_from_its_checkpoint(single_run, tiny_cross_data, tiny_cross_init, tmp_path):
    out = tmp_path / "model"
    checkpoints = Path(f"{out}.checkpoints")
    first = _launch(tiny_cross_data, tiny_cross_init, out, BASE, extra=["--stop-after-steps", "3"], check=False)
    assert first.returncode != 0
    assert not out.exists()  # no model from a killed run
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-2"]
    position = json.loads((checkpoints / "step-2" / "position.json").read_text())
    assert (position["step"], position["epoch"], position["batch"]) == (2, 0, 2)
    saved = tmp_path / "saved.checkpoints"
    shutil.copytree(checkpoints, saved)

    _launch(tiny_cross_data, tiny_cross_init, out, BASE)
    assert "resuming from step 2" in Path(f"{out}.log").read_text()
    assert not checkpoints.exists()
    ref, got = _weights(single_run), _weights(out)
    for name in ref:
        assert torch.allclose(ref[name], got[name], atol=1e-6, rtol=0), name
    assert np.allclose(_history(out), _history(single_run), atol=1e-6)
    from bicross.losscurve import read_loss_table  # the resumed run keeps steps 1-2, each once

    resumed, whole = (read_loss_table(p / "loss.parquet").to_pydict() for p in (out, single_run))
    assert resumed["step"] == whole["step"] == list(range(1, STEPS + 1))
    assert np.allclose(resumed["loss"], whole["loss"], atol=1e-6)
    assert np.allclose(resumed["learning_rate"], whole["learning_rate"])

    # a checkpoint written with other settings is not resumed
    other = tmp_path / "other"
    shutil.copytree(saved, f"{other}.checkpoints")
    _launch(tiny_cross_data, tiny_cross_init, other, {**BASE, "learning_rate": 5e-3, "max_steps": 2})
    log = Path(f"{other}.log").read_text()
    assert "starting over" in log and "resuming" not in log


def test_the_head_rate_is_for_a_new_head_only(tiny_cross_init, tmp_path):
    """A bi-encoder checkpoint gets a new head (head_learning_rate applies); a saved cross-encoder (a
    warm start from cross-encoder k-1) keeps its trained head, trained at learning_rate."""
    from transformers import AutoModelForSequenceClassification

    from bicross.train.cross import head_is_new, head_rate_for
    from bicross.training import TrainConfig

    saved = tmp_path / "cross"
    AutoModelForSequenceClassification.from_pretrained(tiny_cross_init, num_labels=1).save_pretrained(saved)
    assert head_is_new(str(tiny_cross_init)) and not head_is_new(str(saved))
    fresh, warm = TrainConfig(head_learning_rate=1e-2), TrainConfig(head_learning_rate=1e-2)
    head_rate_for(str(tiny_cross_init), fresh)
    head_rate_for(str(saved), warm)
    assert fresh.head_learning_rate == 1e-2 and warm.head_learning_rate is None
