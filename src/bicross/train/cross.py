"""Retrieval cross-encoder (reranker): group-wise softmax CE over 1 positive + mined negatives.

Inputs: the mined groups (``--negatives``: qid, positives, negatives) and the token files of the train
queries and the corpus. Each epoch, each query with at least one positive and one negative becomes one
group: a positive drawn at random from its positives (index 0) and ``train_group_size - 1`` negatives
drawn from its negatives (without replacement when it has enough, else with replacement), the queries
in a random order; all of it from an RNG seeded with (seed, epoch), so an epoch's groups do not depend
on the number of processes and a resumed run sees the same ones. A batch of B groups is B * G pairs
``[CLS] query [SEP] document [SEP]`` (the model's own pair template) cut to ``max_length``, padded to
the batch's longest pair. Saved with ``save_pretrained`` (model and tokenizer): it loads with
``AutoModelForSequenceClassification.from_pretrained(out)`` and ``sentence_transformers.CrossEncoder(out)``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from bicross.errors import ConfigError, InputError
from bicross.hparams import TrainConfig, setting
from bicross.tokenize import SpecialTokens
from bicross.train import Job, pick
from bicross.trainio import PackedTokens, list_offsets, read_columns, rows_of

if TYPE_CHECKING:
    import torch

log = logging.getLogger("bicross.train.cross")

INPUTS = {
    "negatives": "Parquet: qid, positives: list<string>, negatives: list<string>",
    "queries": "token Parquet of the train queries: id, input_ids",
    "corpus": "token Parquet of the documents: id, input_ids",
}


@dataclass
class CrossSettings(TrainConfig):
    """What every cross-encoder recipe sets (defaults: the schema's cross_encoder section)."""

    batch_size: int = setting(2, "examples (retrieval: groups) per device per micro-batch")
    learning_rate: float = setting(1e-4, "peak AdamW learning rate of the encoder (0 freezes the weights)")
    head_learning_rate: float | None = setting(
        1e-2, "learning rate of a NEW 1-logit head (a warm start trains its head at learning_rate); null: learning_rate")
    max_length: int = setting(192, "tokens per pair")
    epochs: float = setting(3, "passes over the training examples")
    attn_implementation: str = setting(
        "auto", "attention kernel while training: auto is eager on CPU (faster backward there), else the default")

    def validate(self) -> None:
        super().validate()
        if int(self.max_length) < 8:
            raise ConfigError(f"max_length must be >= 8, got {self.max_length}")


@dataclass
class Hparams(CrossSettings):
    """The retrieval cross-encoder's settings."""

    train_group_size: int = setting(8, "documents per query and group: 1 positive + train_group_size - 1 negatives")

    def validate(self) -> None:
        super().validate()
        if int(self.train_group_size) < 2:
            raise ConfigError(f"train_group_size must be >= 2 (1 positive + negatives), got {self.train_group_size}")


SEED_OFFSET = 0
SECTIONS = ("cross_encoder",)  # what from_config reads (the model card shows it)


def from_config(sections: dict[str, dict[str, Any]], model: str, seed: int, families: int) -> dict[str, Any]:
    """The cross_encoder section (this iteration's values), the model to start from and the seed."""
    return {**pick(Hparams, sections["cross_encoder"]), "model": model, "seed": seed}


# --------------------------------------------------------------------------------------------------
# data


class CrossGroups:
    """A map-style dataset, one item per training query per epoch: (query row, document rows with the
    positive first).

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
        from bicross.batching import pad_batch

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


def load_for_training(hp, accelerator):
    """The cross-encoder to train (bicross.score.CrossEncoder, as inference loads it), with the head's
    learning rate settled: a new head gets `head_learning_rate`, a trained one `learning_rate`."""
    from bicross.score import CrossEncoder

    head_rate_for(hp.model, hp)
    return CrossEncoder.for_training(hp.model, hp.attention_dropout,
                                     training_attention(hp.attn_implementation, accelerator.device))


def prepare(hp: Hparams, inputs: dict[str, str], accelerator):
    from bicross.encode import forward_keys
    from bicross.learning import group_ce_uniform
    from bicross.losses import GroupSoftmaxCE

    data = CrossGroups(inputs["negatives"], inputs["queries"], inputs["corpus"], hp.train_group_size, hp.seed)
    if accelerator.is_main_process:
        log.info("%d training queries (%d skipped without positives, %d without negatives), %d documents",
                 len(data), data.skipped_no_positive, data.skipped_no_negative, len(data.docs))
    encoder = load_for_training(hp, accelerator)
    collate = PairCollator(data, encoder.special, hp.max_length, forward_keys(encoder.model))
    group = int(hp.train_group_size)
    criterion = GroupSoftmaxCE(group)

    def loss_fn(model, batch):
        return criterion(model(**batch).logits.view(-1), group)

    def save(unwrapped, path: Path) -> None:
        unwrapped.save_pretrained(path)
        encoder.tokenizer.save_pretrained(path)

    return Job(model=encoder.model, dataset=data, collate=collate, loss_fn=loss_fn,
               count_fn=lambda b: int(b["input_ids"].shape[0]), save=save, unit="pair", who="the cross-encoder",
               uniform=group_ce_uniform(group), info={"train_queries": len(data)})
