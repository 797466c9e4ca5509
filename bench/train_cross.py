"""Training pairs per second: bicross `train_cross` vs sentence-transformers' `CrossEncoderTrainer`.

Same model (`--model`, by default the packaged all-MiniLM-L6-v2, with a new 1-logit head), same data
(the first ``steps * batch_size`` SciFact train queries, each with its first qrels positive and 7 random
corpus negatives), same loss (group-wise softmax CE over 1 positive + 7 negatives: sentence-transformers'
`ListNetLoss` with a one-hot target is exactly that), same batch size (queries per step), optimiser
settings, max length and precision, one epoch over those queries, so both train the same number of
steps on the same groups. Each side runs in its own process with the same thread count, one after
the other in the same run; the rate is pairs / seconds of the training loop (model loading and
saving excluded), as each trainer times it.

sentence-transformers runs three times, all in bf16 autocast (its trainer's `bf16=True`, what its
users set for speed): with its defaults (the loss's ``mini_batch_size`` = batch size: one forward per
2 pairs, the model's attention dropout 0.1), with one forward over all of a step's pairs, and with
that plus attention dropout 0 (`config_kwargs`), the setting bicross trains with; the headline
speedup is taken against the fastest of the three. It tokenizes text on the fly, as it does;
bicross reads token ids that the workflow's tokenize stage wrote once for every iteration (the
time to tokenize them here is reported beside).

    python bench/train_cross.py [--steps 30] [--batch-size 2] [--threads 2] [--precision bf16]
        [--data ../shared/data/scifact] [--extra-sys-path DIR] [--model sentence-transformers/all-MiniLM-L6-v2]

`--model` takes a local folder or a hub name, resolved as the workflow resolves it (a packaged or
installed copy first: `bicross models install all-mpnet-base-v2`); both trainers start from it.

`CrossEncoderTrainer` needs the `datasets` package: `pip install -e '.[bench]'` (without it the script
stops at once, saying so); or `--extra-sys-path DIR` appends a folder holding it (e.g. from
`pip install --target DIR --no-deps datasets dill multiprocess xxhash`) to sys.path.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
GROUP = 8


def prepare(args, work: Path) -> dict:
    """Token files + negatives for bicross, and the same groups as text for sentence-transformers."""
    import pyarrow as pa
    from transformers import AutoTokenizer

    from bicross.data import load_dataset
    from bicross.models import resolve_model_path
    from bicross.schemas import NEGATIVES, TOKENS, write_table
    from bicross.tokenize import document_text

    ds = load_dataset({"format": "beir", "path": args.data, "splits": ["train"]})
    qrels = ds.qrels["train"].to_pydict()
    positives: dict[str, list[str]] = {}
    for qid, docid, rel in zip(qrels["qid"], qrels["docid"], qrels["relevance"], strict=True):
        if rel > 0:
            positives.setdefault(qid, []).append(docid)
    qtab = ds.queries["train"].to_pydict()
    qtext = dict(zip(qtab["qid"], qtab["text"], strict=True))
    corpus = ds.corpus.to_pydict()
    dtext = {d: document_text(t, x) for d, t, x in zip(corpus["docid"], corpus["title"], corpus["text"],
                                                       strict=True)}
    rng = random.Random(args.seed)
    qids = [q for q in qtab["qid"] if q in positives][: args.steps * args.batch_size]
    if len(qids) < args.steps * args.batch_size:
        raise SystemExit(f"only {len(qids)} train queries with positives for {args.steps} steps")
    docids = corpus["docid"]
    groups = []
    for q in qids:
        negs = []
        while len(negs) < GROUP - 1:
            d = rng.choice(docids)
            if d not in positives[q] and d not in negs:
                negs.append(d)
        groups.append((q, positives[q][0], negs))

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(args.model))
    used = sorted({d for _, p, n in groups for d in [p, *n]})
    start = time.perf_counter()
    q_ids = tokenizer([qtext[q] for q in qids], add_special_tokens=False, truncation=True, max_length=62)
    d_ids = tokenizer([dtext[d] for d in used], add_special_tokens=False, truncation=True, max_length=254)
    tokenize_seconds = time.perf_counter() - start
    paths = {"queries": work / "queries.parquet", "corpus": work / "corpus.parquet",
             "negatives": work / "negatives.parquet", "st": work / "st.json"}
    write_table(pa.table({"id": qids, "input_ids": q_ids["input_ids"]}), paths["queries"], TOKENS)
    write_table(pa.table({"id": used, "input_ids": d_ids["input_ids"]}), paths["corpus"], TOKENS)
    write_table(pa.table({"qid": qids, "positives": [[p] for _, p, _ in groups],
                          "negatives": [n for _, _, n in groups]}), paths["negatives"], NEGATIVES)
    paths["st"].write_text(json.dumps({
        "query": [qtext[q] for q, _, _ in groups],
        "docs": [[dtext[p]] + [dtext[d] for d in n] for _, p, n in groups],
        "labels": [[100.0] + [0.0] * (GROUP - 1) for _ in groups],  # softmax -> one-hot on the positive
    }))
    return {"paths": {k: str(v) for k, v in paths.items()}, "queries": len(qids),
            "tokenize_seconds": tokenize_seconds}


def run_bicross(args, paths: dict, work: Path) -> dict:
    out = work / "bicross-model"
    hparams = {"model": args.model, "train_group_size": GROUP, "batch_size": args.batch_size, "epochs": 1,
               "learning_rate": 5e-5, "warmup_ratio": 0.1, "weight_decay": 0.01, "max_length": args.max_length,
               "precision": args.precision, "attention_dropout": 0.0, "checkpoint_every": 10**6,
               "log_every": 10, "seed": args.seed}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--num_processes", "1",
           "--cpu", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "bicross.train", "cross",
           "--negatives", paths["negatives"], "--queries", paths["queries"], "--corpus", paths["corpus"],
           "--out", str(out), "--checkpoints", str(work / "bicross-checkpoints"), "--hparams", json.dumps(hparams),
           "--threads", str(args.threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"bicross failed:\n{proc.stderr[-4000:]}")
    summary = json.loads((out / "training.json").read_text())
    return {"pairs_per_s": round(summary["pairs_per_second"], 2), "seconds": round(summary["seconds"], 1),
            "steps": summary["steps"], "pairs": summary["examples"], "precision": summary["mixed_precision"],
            "attention_dropout": 0.0, "first_loss": round(summary["history"][0][1], 4),
            "last_loss": round(summary["history"][-1][1], 4)}


def run_st(args, paths: dict, work: Path, mini_batch: int | None, no_dropout: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--st-worker", paths["st"], "--steps", str(args.steps),
           "--batch-size", str(args.batch_size), "--threads", str(args.threads), "--precision", args.precision,
           "--max-length", str(args.max_length), "--seed", str(args.seed), "--work", str(work), "--model", args.model]
    if mini_batch:
        cmd += ["--st-mini-batch", str(mini_batch)]
    if no_dropout:
        cmd += ["--st-no-attention-dropout"]
    if args.extra_sys_path:
        cmd += ["--extra-sys-path", args.extra_sys_path]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"sentence-transformers failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def st_worker(args) -> None:
    """Train with sentence-transformers' own trainer; print one JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, losses
    from sentence_transformers.cross_encoder.training_args import CrossEncoderTrainingArguments
    from transformers import AutoConfig, TrainerCallback

    from bicross.models import dropout_overrides, resolve_model_path

    data = json.loads(Path(args.st_worker).read_text())
    dataset = Dataset.from_dict(data)
    path = resolve_model_path(args.model)
    # the same config keys bicross sets (BERT-likes and MPNet name it differently from DistilBERT-likes)
    config_kwargs = dropout_overrides(AutoConfig.from_pretrained(path), 0.0) if args.st_no_attention_dropout else None
    model = CrossEncoder(path, num_labels=1, max_length=args.max_length, device="cpu", config_kwargs=config_kwargs)
    loss = losses.ListNetLoss(model, activation_fn=torch.nn.Identity(),
                              mini_batch_size=args.st_mini_batch or None)
    bf16 = args.precision in ("bf16", "auto")

    class Clock(TrainerCallback):
        start = end = 0.0

        def on_train_begin(self, *a, **k):
            Clock.start = time.perf_counter()

        def on_train_end(self, *a, **k):
            Clock.end = time.perf_counter()

    losses_seen = []

    class Losses(TrainerCallback):
        def on_log(self, _args, _state, _control, logs=None, **k):
            if logs and "loss" in logs:
                losses_seen.append(logs["loss"])

    targs = CrossEncoderTrainingArguments(
        output_dir=str(Path(args.work) / "st-out"), per_device_train_batch_size=args.batch_size,
        num_train_epochs=1, max_steps=args.steps, learning_rate=5e-5, warmup_ratio=0.1, weight_decay=0.01,
        bf16=bf16, use_cpu=True, save_strategy="no", report_to="none", logging_steps=1, disable_tqdm=True,
        seed=args.seed, dataloader_drop_last=True,
    )
    trainer = CrossEncoderTrainer(model=model, args=targs, train_dataset=dataset, loss=loss,
                                  callbacks=[Clock(), Losses()])
    trainer.train()
    seconds = Clock.end - Clock.start
    pairs = args.steps * args.batch_size * GROUP
    print(json.dumps({"pairs_per_s": round(pairs / seconds, 2), "seconds": round(seconds, 1), "steps": args.steps,
                      "pairs": pairs, "precision": "bf16" if bf16 else "fp32",
                      "forward_pairs": args.st_mini_batch or args.batch_size,
                      "attention_dropout": model.model.config.attention_probs_dropout_prob
                      if hasattr(model, "model") else None,
                      "first_loss": round(losses_seen[0], 4) if losses_seen else None,
                      "last_loss": round(losses_seen[-1], 4) if losses_seen else None}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=MODEL, help="local folder or hub name (bicross.models.resolve_model_path)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=2, help="queries (groups of 8 pairs) per step")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp32", "auto"])
    parser.add_argument("--max-length", type=int, default=192)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/scifact"))
    parser.add_argument("--extra-sys-path", default=None)
    parser.add_argument("--st-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--st-mini-batch", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--st-no-attention-dropout", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.extra_sys_path:
        sys.path.append(args.extra_sys_path)
    from bicross.extras import require

    # checked before anything runs: sentence-transformers' side would only fail minutes later
    require("datasets", "bench", "sentence-transformers' CrossEncoderTrainer", "bench/train_cross.py")
    if args.st_worker:
        st_worker(args)
        return

    import torch

    from bicross import devices

    with tempfile.TemporaryDirectory(prefix="bench-train-cross-") as tmp:
        work = Path(tmp)
        prepared = prepare(args, work)
        ours = run_bicross(args, prepared["paths"], work)
        st_default = run_st(args, prepared["paths"], work, None)
        st_one_forward = run_st(args, prepared["paths"], work, args.batch_size * GROUP)
        st_no_dropout = run_st(args, prepared["paths"], work, args.batch_size * GROUP, no_dropout=True)
    peers = {"default": st_default, "one_forward": st_one_forward, "one_forward_no_attention_dropout": st_no_dropout}
    best = max(peers, key=lambda name: peers[name]["pairs_per_s"])
    best_st = peers[best]["pairs_per_s"]
    print(json.dumps({
        "benchmark": "train_cross",
        "model": args.model + " (new 1-logit head)",
        "data": f"SciFact train: {prepared['queries']} queries x (1 positive + {GROUP - 1} random negatives)",
        "steps": args.steps, "batch_size_queries": args.batch_size, "pairs_per_step": args.batch_size * GROUP,
        "max_length": args.max_length, "threads": args.threads,
        "machine": f"{platform.processor() or platform.machine()}, bf16 hardware: {devices.cpu_has_bf16()}, "
                   f"torch {torch.__version__}",
        "bicross": {**ours, "pretokenize_seconds": round(prepared["tokenize_seconds"], 2)},
        "sentence_transformers_default": st_default,
        "sentence_transformers_one_forward": st_one_forward,
        "sentence_transformers_one_forward_no_attention_dropout": st_no_dropout,
        "best_st_setting": best,
        "speedup_vs_best_st": round(ours["pairs_per_s"] / best_st, 2),
        "speedup_vs_st_default": round(ours["pairs_per_s"] / st_default["pairs_per_s"], 2),
    }, indent=2))


if __name__ == "__main__":
    main()
