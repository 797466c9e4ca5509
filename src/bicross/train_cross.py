"""Train the cross-encoder (reranker) on mined hard negatives with group-wise softmax CE.

Run under accelerate (the workflow's `train_cross` rule does it through `bicross.launch`)::

    accelerate launch [--multi_gpu --num_processes N ...] -m bicross.train_cross \\
        --negatives iter1/negatives.parquet --queries tokens/<tok>/queries/train.parquet \\
        --corpus tokens/<tok>/corpus.parquet --out iter1/cross/model \\
        --checkpoints iter1/cross/model.checkpoints --hparams '{"epochs": 3}'  [--log train.log]

Each epoch, each query with at least one positive and one negative becomes one group: a positive
drawn at random from its positives (index 0) and ``train_group_size - 1`` negatives drawn from its
negatives (without replacement when it has enough, else with replacement), the queries in a random
order; all of it from an RNG seeded with (seed, epoch), so an epoch's groups do not depend on the
number of processes and a resumed run sees the same ones. A batch of B groups is B * G pairs
``[CLS] query [SEP] document [SEP]`` cut to ``max_length``, padded to the batch's longest pair.
The model is saved with ``save_pretrained`` (model and tokenizer): it loads with
``AutoModelForSequenceClassification.from_pretrained(out)`` and ``sentence_transformers.CrossEncoder(out)``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import Dataset

from bicross.batching import pad_batch
from bicross.errors import ConfigError, InputError
from bicross.losses import GroupSoftmaxCE
from bicross.tokenize import SpecialTokens
from bicross.trainio import PackedTokens, list_offsets, load_hparams, read_columns, rows_of

log = logging.getLogger("bicross.train_cross")

DEFAULTS: dict[str, Any] = {
    "model": "sentence-transformers/all-MiniLM-L6-v2",
    "train_group_size": 8,
    "batch_size": 2,
    "gradient_accumulation": 1,
    "learning_rate": 1e-4,
    "head_learning_rate": 1e-2,  # the new 1-logit head (outside the base model); None: learning_rate
    "warmup_ratio": 0.1,
    "weight_decay": 0.01,
    "max_length": 192,
    "epochs": 3,
    "max_steps": None,
    "precision": "auto",
    "gradient_checkpointing": False,
    "attention_dropout": 0.0,
    "attn_implementation": "auto",  # auto: eager on CPU (training there is ~25% faster than sdpa), else sdpa
    "checkpoint_every": 200,
    "seed": 42,
    "log_every": 10,
    "max_grad_norm": 1.0,
    "keep_checkpoints": 2,
}


def resolve_hparams(given: dict[str, Any] | None) -> dict[str, Any]:
    """DEFAULTS updated by `given`; an unknown key is a ConfigError (a typo should not pass silently)."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown cross-encoder hyperparameters {unknown}; known: {sorted(DEFAULTS)}")
    hp = {**DEFAULTS, **given}
    if int(hp["train_group_size"]) < 2:
        raise ConfigError(f"train_group_size must be >= 2 (1 positive + negatives), got {hp['train_group_size']}")
    if int(hp["max_length"]) < 8:
        raise ConfigError(f"max_length must be >= 8, got {hp['max_length']}")
    return hp


# --------------------------------------------------------------------------------------------------
# data


class CrossGroups(Dataset):
    """One item per training query per epoch: (query row, document rows with the positive first).

    Item i of epoch e is a deterministic function of (seed, e, i): every process builds the same
    epoch and the sampler hands each its share, so the process layout does not change the groups.
    """

    def __init__(self, negatives: str | os.PathLike, queries: str | os.PathLike, corpus: str | os.PathLike,
                 group_size: int, seed: int):
        self.group_size = int(group_size)
        self.seed = int(seed)
        self._epoch: int | None = None
        self._order = self._groups = None

        neg = read_columns(negatives, ("qid", "positives", "negatives"))
        qtab = read_columns(queries, ("id", "input_ids"))
        ctab = read_columns(corpus, ("id", "input_ids"))

        pos_flat, pos_off = list_offsets(neg.column("positives"))
        neg_flat, neg_off = list_offsets(neg.column("negatives"))
        npos, nneg = np.diff(pos_off), np.diff(neg_off)
        keep = (npos > 0) & (nneg > 0)
        self.skipped_no_positive = int((npos == 0).sum())
        self.skipped_no_negative = int(((npos > 0) & (nneg == 0)).sum())
        if not keep.any():
            raise InputError(negatives, None, "queries with at least one positive and one negative",
                             f"none among {neg.num_rows} rows")

        corpus_ids = ctab.column("id").combine_chunks()
        pos_rows = rows_of(pos_flat, corpus_ids, negatives, f"documents in {corpus}", "positives")
        neg_rows = rows_of(neg_flat, corpus_ids, negatives, f"documents in {corpus}", "negatives")
        # keep only the documents the groups can use, renumbered 0..k-1
        used = np.unique(np.concatenate([pos_rows, neg_rows]))
        self.docs = PackedTokens.from_column(ctab.column("input_ids").take(pa.array(used)))
        self.doc_ids = corpus_ids.take(pa.array(used))  # docid of each packed document
        del ctab
        self._pos_rows = np.searchsorted(used, pos_rows)
        self._neg_rows = np.searchsorted(used, neg_rows)
        self._pos_off, self._neg_off = pos_off, neg_off

        qids = neg.column("qid").combine_chunks()
        self.query_index = np.flatnonzero(keep)  # rows of the negatives file that train
        self.qids = qids.take(pa.array(self.query_index)).to_pylist()
        qrows = rows_of(pa.array(self.qids, pa.string()), qtab.column("id").combine_chunks(), negatives,
                      f"query tokens in {queries}", "qid")
        self.queries = PackedTokens.from_column(qtab.column("input_ids").take(pa.array(qrows)))

    def __len__(self) -> int:
        return len(self.query_index)

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's order and groups from an RNG seeded with (seed, epoch); idempotent."""
        epoch = int(epoch)
        if epoch == self._epoch:
            return
        rng = np.random.default_rng([self.seed, epoch])
        n, g = len(self.query_index), self.group_size
        order = rng.permutation(n)
        groups = np.empty((n, g), dtype=np.int64)
        for k, q in enumerate(order):
            row = self.query_index[q]
            p0, p1 = self._pos_off[row], self._pos_off[row + 1]
            n0, n1 = self._neg_off[row], self._neg_off[row + 1]
            groups[k, 0] = self._pos_rows[p0 + rng.integers(p1 - p0)]
            count = n1 - n0
            groups[k, 1:] = self._neg_rows[n0 + rng.choice(count, g - 1, replace=bool(count < g - 1))]
        self._epoch, self._order, self._groups = epoch, order, groups

    def __getitem__(self, i: int) -> tuple[int, np.ndarray]:
        if self._epoch is None:
            self.set_epoch(0)
        return int(self._order[i]), self._groups[i]


class PairCollator:
    """Groups -> B * G (query, document) pairs with special tokens, padded; pair b * G + j is group b, doc j."""

    def __init__(self, data: CrossGroups, special: SpecialTokens, max_length: int, keys: set[str]):
        self.data = data
        self.special = special
        self.max_length = int(max_length)
        self.keys = keys

    def __call__(self, items: list[tuple[int, np.ndarray]]) -> dict[str, torch.Tensor]:
        ids, types = [], []
        for q, docs in items:
            query = self.data.queries[q].tolist()
            for d in docs:
                pair, segment = self.special.pair(query, self.data.docs[int(d)].tolist(), self.max_length)
                ids.append(pair)
                types.append(segment)
        batch = pad_batch(ids, self.special.pad_id, types)
        return {k: v for k, v in batch.items() if k in self.keys}


# --------------------------------------------------------------------------------------------------
# model


def training_attention(attn_implementation: str, device: torch.device) -> str | None:
    """The attention kernel to train with: "auto" is eager on CPU, the library's default elsewhere.

    On this CPU (MiniLM, 16 pairs of 192 tokens, bf16 autocast, attention dropout 0) a training step
    takes 0.90 s with eager attention and 1.13 s with SDPA, whose CPU flash-attention backward is slow.
    The choice is not saved with the model: inference loads with the default again.
    """
    if attn_implementation == "auto":
        return "eager" if device.type == "cpu" else None
    return attn_implementation


def head_is_new(name: str) -> bool:
    """Whether loading `name` as a 1-logit cross-encoder makes a new head: anything but a saved
    sequence-classification model with one label (e.g. a bi-encoder checkpoint)."""
    from transformers import AutoConfig

    from bicross.models import resolve_model_path

    config = AutoConfig.from_pretrained(resolve_model_path(name))
    trained = any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))
    return not (trained and config.num_labels == 1)


def head_rate_for(name: str, config) -> None:
    """`head_learning_rate` is for a NEW head: a warm start (cross-encoder k-1) trains its head like the body."""
    if config.head_learning_rate is not None and not head_is_new(name):
        log.info("%s has a trained head: head_learning_rate %g not used, learning_rate %g for every parameter",
                 name, config.head_learning_rate, config.learning_rate)
        config.head_learning_rate = None


def load_cross_init(name: str, attention_dropout: float = 0.0, attn_implementation: str | None = None):
    """A 1-logit sequence-classification model (a new head when `name` is a bi-encoder) and its tokenizer."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from bicross.models import resolve_model_path

    path = resolve_model_path(name)
    config = AutoConfig.from_pretrained(path)
    overrides: dict[str, Any] = {"num_labels": 1}
    for key in ("attention_probs_dropout_prob", "attention_dropout"):  # BERT-likes / DistilBERT-likes
        if hasattr(config, key):
            overrides[key] = float(attention_dropout)
    if "attention_probs_dropout_prob" not in overrides and "attention_dropout" not in overrides:
        overrides["attention_probs_dropout_prob"] = float(attention_dropout)
    if attn_implementation:
        overrides["attn_implementation"] = attn_implementation
    model = AutoModelForSequenceClassification.from_pretrained(path, ignore_mismatched_sizes=True, **overrides)
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer


def train_cross(negatives, queries, corpus, out, checkpoints, hparams: dict[str, Any] | None = None,
                log_path: str | None = None, stop_after_steps: int | None = None) -> dict[str, Any]:
    """Train and save the cross-encoder; returns the summary also written to ``<out>/training.json``."""
    from bicross.encode import forward_keys
    from bicross.learning import group_ce_uniform
    from bicross.training import file_signature, finish, learning_check, save_final, start, train

    hp = resolve_hparams(hparams)
    accelerator, config = start(hp, log_path)

    data = CrossGroups(negatives, queries, corpus, hp["train_group_size"], hp["seed"])
    if accelerator.is_main_process:
        log.info("%d training queries (%d skipped without positives, %d without negatives), %d documents",
                 len(data), data.skipped_no_positive, data.skipped_no_negative, len(data.docs))
    head_rate_for(hp["model"], config)
    model, tokenizer = load_cross_init(hp["model"], hp["attention_dropout"],
                                       training_attention(hp["attn_implementation"], accelerator.device))
    special = SpecialTokens.probe(tokenizer)
    collate = PairCollator(data, special, hp["max_length"], forward_keys(model))
    group = int(hp["train_group_size"])
    criterion = GroupSoftmaxCE(group)

    def loss_fn(model, batch):
        return criterion(model(**batch).logits.view(-1), group)

    settings = {"hparams": hp, "inputs": [file_signature(p) for p in (negatives, queries, corpus)]}
    model, result = train(accelerator, model, data, collate, loss_fn, config, checkpoints, settings=settings,
                          count_fn=lambda b: int(b["input_ids"].shape[0]), unit="pair",
                          stop_after_steps=stop_after_steps)
    summary = {"hparams": hp, "train_queries": len(data), "num_processes": accelerator.num_processes,
               "mixed_precision": accelerator.mixed_precision, "config": asdict(config), **result.to_dict(),
               "pairs_per_second": result.examples_per_second,
               "learning": learning_check(accelerator, result, group_ce_uniform(group), "the cross-encoder")}

    def save(unwrapped, path: Path) -> None:
        unwrapped.save_pretrained(path)
        tokenizer.save_pretrained(path)
        (path / "training.json").write_text(json.dumps(summary, indent=1))

    save_final(accelerator, model, out, save)
    if accelerator.is_main_process:
        log.info("training pairs/second: %.2f (%d pairs in %.1f s, %d processes)", result.examples_per_second,
                 result.examples, result.seconds, accelerator.num_processes)
    finish(accelerator, checkpoints)
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bicross.train_cross", description=__doc__.split("\n")[0])
    parser.add_argument("--negatives", required=True, help="Parquet: qid, positives: list<string>, negatives: list<string>")
    parser.add_argument("--queries", required=True, help="token Parquet of the train queries: id, input_ids")
    parser.add_argument("--corpus", required=True, help="token Parquet of the documents: id, input_ids")
    parser.add_argument("--out", required=True, help="model directory to create")
    parser.add_argument("--checkpoints", required=True, help="checkpoint directory (resumed from if present)")
    parser.add_argument("--hparams", default=None, help="JSON object, or a JSON/YAML file, of hyperparameters")
    parser.add_argument("--log", default=None, help="also append the log to this file")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process")
    parser.add_argument("--stop-after-steps", type=int, default=None, help=argparse.SUPPRESS)  # tests
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    train_cross(args.negatives, args.queries, args.corpus, args.out, args.checkpoints,
                load_hparams(args.hparams), log_path=args.log, stop_after_steps=args.stop_after_steps)


if __name__ == "__main__":
    main()
