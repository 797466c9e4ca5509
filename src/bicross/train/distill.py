"""Retrieval bi-encoder distillation: bi-encoder k learns cross-encoder k's teacher scores.

Inputs: the teacher scores (``--teacher``: qid, docid, score), the train qrels and the token files of
the train queries and the corpus. Each epoch, each train query with a positive becomes one group: a
positive drawn at random from its qrels positives (index 0) and ``group_size - 1`` of its other
teacher-scored candidates, with the teacher's scores for all of them. The student scores a group by
the similarity of the query's and the documents' pooled embeddings; the loss (`loss: kl`) is

    kl_weight * KL(softmax(teacher / T_teacher) || softmax(student / T_student))   (batchmean)
      + inbatch_weight * CE over every document of the batch, target the query's positive (student / T_student)

or ``loss: margin_mse`` (MarginMSE on positive - negative margins) plus the same in-batch term
(bicross.losses). Saved with its sentence-transformers files, so `SentenceTransformer(out)` and
`AutoModel.from_pretrained(out)` load it with its pooling and normalisation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bicross.errors import ConfigError, InputError
from bicross.hparams import TrainConfig, setting
from bicross.tokenize import SpecialTokens
from bicross.train import Job, pick
from bicross.trainio import PackedTokens, read_columns, rows_of

if TYPE_CHECKING:
    import torch

log = logging.getLogger("bicross.train.distill")

INPUTS = {
    "teacher": "Parquet: qid, docid, score (cross-encoder k)",
    "qrels": "train qrels Parquet (positives: relevance > 0)",
    "queries": "token Parquet of the train queries",
    "corpus": "token Parquet of the documents",
}
LOSSES = ("kl", "margin_mse")


@dataclass
class BiSettings(TrainConfig):
    """What every bi-encoder recipe sets (defaults: the schema's distill and bi_encoder sections)."""

    pooling: str = setting("auto", "mean | cls | auto (the model's own sentence-transformers setting)")
    normalize: Any = setting("auto", "L2-normalise embeddings: true | false | auto (the model's own setting)")
    batch_size: int = setting(8, "examples (retrieval: groups) per device per micro-batch")
    learning_rate: float = setting(2e-5, "peak AdamW learning rate (0 freezes the weights)")
    epochs: float = setting(1, "passes over the training examples")


@dataclass
class Hparams(BiSettings):
    """Retrieval bi-encoder distillation settings."""

    group_size: int = setting(8, "documents per query: 1 positive + group_size - 1 teacher-scored candidates")
    query_max_length: int = setting(64, "tokens per query")
    doc_max_length: int = setting(256, "tokens per document")
    loss: str = setting("kl", "kl (KL between the softmaxes over a group) | margin_mse")
    teacher_temperature: float = setting(1.0, "softmax temperature of the teacher's scores")
    student_temperature: float = setting(0.05, "softmax temperature of the student's similarities")
    kl_weight: float = setting(1.0, "weight of the teacher term (kl or margin_mse)")
    inbatch_weight: float = setting(1.0, "weight of the in-batch negatives CE (0: off)")

    def validate(self) -> None:
        super().validate()
        if int(self.group_size) < 2:
            raise ConfigError(f"group_size must be >= 2 (1 positive + candidates), got {self.group_size}")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be kl or margin_mse, got {self.loss!r}")


SEED_OFFSET = 1000
SECTIONS = ("distill", "bi_encoder", "tokenize")  # what from_config reads (the model card shows it)


def from_config(sections: dict[str, dict[str, Any]], model: str, seed: int, families: int) -> dict[str, Any]:
    """The distill section (this iteration's values), the bi-encoder's pooling and the token lengths."""
    bi, tok = sections["bi_encoder"], sections["tokenize"]
    return {**pick(Hparams, sections["distill"]), "pooling": bi["pooling"], "normalize": bi["normalize"],
            "query_max_length": tok["query_max_length"], "doc_max_length": tok["doc_max_length"],
            "model": model, "seed": seed}


class TeacherGroups:
    """A map-style dataset, one item per train query per epoch: (query row, document rows with a positive
    first, teacher scores)."""

    def __init__(self, teacher, qrels, queries, corpus, group_size: int, seed: int):
        self.group_size, self.seed = int(group_size), int(seed)
        self._epoch = None
        scored = read_columns(teacher, ("qid", "docid", "score"))
        judged = read_columns(qrels, ("qid", "docid", "relevance"))
        positives = judged.filter(pc.greater(judged.column("relevance"), 0))
        pos_keys = set(zip(positives.column("qid").to_pylist(), positives.column("docid").to_pylist(), strict=True))
        scored = scored.sort_by([("qid", "ascending"), ("docid", "ascending")])
        qids = scored.column("qid").to_pylist()
        docids = scored.column("docid").combine_chunks()
        is_pos = np.fromiter(((q, d) in pos_keys for q, d in zip(qids, docids.to_pylist(), strict=True)),
                             dtype=bool, count=len(qids))
        self.scores = scored.column("score").to_numpy().astype(np.float32)

        ctab = read_columns(corpus, ("id", "input_ids"))
        doc_rows = rows_of(docids, ctab.column("id").combine_chunks(), teacher, f"documents in {corpus}", "docid")
        used, self._doc = np.unique(doc_rows, return_inverse=True)
        self.docs = PackedTokens.from_column(ctab.column("input_ids").take(pa.array(used)))
        del ctab

        starts = np.flatnonzero(np.r_[True, np.asarray(qids[1:], dtype=object) != np.asarray(qids[:-1], dtype=object)])
        bounds = np.r_[starts, len(qids)]
        self.groups: list[tuple[np.ndarray, np.ndarray]] = []  # (positive entries, candidate entries)
        names, self.skipped = [], 0
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            entries = np.arange(a, b)
            pos, cand = entries[is_pos[a:b]], entries[~is_pos[a:b]]
            if len(pos) == 0 or len(cand) == 0:
                self.skipped += 1
                continue
            self.groups.append((pos, cand))
            names.append(qids[a])
        if not self.groups:
            raise InputError(teacher, None, "queries with a scored positive and a scored candidate", "none")
        qtab = read_columns(queries, ("id", "input_ids"))
        qrows = rows_of(pa.array(names, pa.string()), qtab.column("id").combine_chunks(), teacher,
                        f"query tokens in {queries}", "qid")
        self.queries = PackedTokens.from_column(qtab.column("input_ids").take(pa.array(qrows)))

    def __len__(self) -> int:
        return len(self.groups)

    def set_epoch(self, epoch: int) -> None:
        """This epoch's order and groups from an RNG seeded with (seed, epoch): resumable, layout-free."""
        epoch = int(epoch)
        if epoch == self._epoch:
            return
        rng = np.random.default_rng([self.seed, epoch])
        g = self.group_size
        self._order = rng.permutation(len(self.groups))
        self._entries = np.empty((len(self.groups), g), dtype=np.int64)
        for k, q in enumerate(self._order):
            pos, cand = self.groups[q]
            self._entries[k, 0] = pos[rng.integers(len(pos))]
            self._entries[k, 1:] = cand[rng.choice(len(cand), g - 1, replace=bool(len(cand) < g - 1))]
        self._epoch = epoch

    def teacher_groups(self, epoch: int) -> np.ndarray:
        """The teacher scores of that epoch's groups, ``(queries, group_size)``, positive first."""
        self.set_epoch(epoch)
        return self.scores[self._entries]

    def __getitem__(self, i: int):
        if self._epoch is None:
            self.set_epoch(0)
        entries = self._entries[i]
        return int(self._order[i]), self._doc[entries], self.scores[entries]


def uniform_guess(data: TeacherGroups, hp: Hparams) -> float:
    """The distillation loss of a student that scores every document alike, on epoch 0's groups."""
    from bicross.learning import inbatch_uniform, kl_uniform, margin_mse_uniform

    teacher = data.teacher_groups(0)
    term = kl_uniform(teacher, hp.teacher_temperature) if hp.loss == "kl" else margin_mse_uniform(teacher)
    inbatch = inbatch_uniform(hp.batch_size, hp.group_size) if hp.inbatch_weight else 0.0
    return hp.kl_weight * term + hp.inbatch_weight * inbatch


class BiCollator:
    def __init__(self, data: TeacherGroups, special: SpecialTokens, query_max: int, doc_max: int, keys: set[str]):
        self.data, self.special, self.keys = data, special, keys
        self.query_room = query_max - special.single_extra
        self.doc_room = doc_max - special.single_extra

    def _batch(self, seqs) -> dict[str, torch.Tensor]:
        from bicross.batching import pad_batch

        batch = pad_batch([self.special.single(s) for s in seqs], self.special.pad_id)
        return {k: v for k, v in batch.items() if k in self.keys}

    def __call__(self, items) -> dict[str, Any]:
        import torch

        queries = [self.data.queries[q][: self.query_room].tolist() for q, _, _ in items]
        docs = [self.data.docs[int(d)][: self.doc_room].tolist() for _, rows, _ in items for d in rows]
        return {"query": self._batch(queries), "docs": self._batch(docs),
                "teacher": torch.as_tensor(np.stack([t for _, _, t in items]), dtype=torch.float32)}


def prepare(hp: Hparams, inputs: dict[str, str], accelerator):
    import torch

    from bicross.encode import forward_keys
    from bicross.losses import DistillKL, InBatchCE, MarginMSE
    from bicross.models import load_bi_encoder, pool, save_bi_encoder

    data = TeacherGroups(inputs["teacher"], inputs["qrels"], inputs["queries"], inputs["corpus"], hp.group_size,
                         hp.seed)
    if accelerator.is_main_process:
        log.info("%d training queries (%d skipped without a scored positive or candidate), %d documents",
                 len(data), data.skipped, len(data.docs))
    encoder = load_bi_encoder(hp.model, pooling=hp.pooling, normalize=hp.normalize,
                              attention_dropout=hp.attention_dropout)
    special = SpecialTokens.probe(encoder.tokenizer)
    collate = BiCollator(data, special, hp.query_max_length, hp.doc_max_length, forward_keys(encoder.model))
    cfg, group = encoder.pooling, int(hp.group_size)
    t_student = float(hp.student_temperature)
    teacher_loss = DistillKL(hp.teacher_temperature, t_student) if hp.loss == "kl" else MarginMSE(1.0 / t_student)
    inbatch = InBatchCE(t_student)

    def loss_fn(model, batch):
        q = pool(model(**batch["query"]).last_hidden_state, batch["query"]["attention_mask"], cfg)
        d = pool(model(**batch["docs"]).last_hidden_state, batch["docs"]["attention_mask"], cfg)
        student = torch.einsum("bh,bgh->bg", q, d.view(q.shape[0], group, -1))
        loss = hp.kl_weight * teacher_loss(student, batch["teacher"])
        if hp.inbatch_weight:
            loss = loss + hp.inbatch_weight * inbatch(q, d, group)
        return loss

    cfg.max_length = cfg.max_length or int(hp.doc_max_length)

    def save(unwrapped, path: Path) -> None:
        save_bi_encoder(unwrapped, encoder.tokenizer, cfg, path)

    return Job(model=encoder.model, dataset=data, collate=collate, loss_fn=loss_fn,
               count_fn=lambda b: int(b["teacher"].shape[0]), save=save, unit="group", who="the bi-encoder",
               uniform=uniform_guess(data, hp), info={"train_queries": len(data)})
