"""Train on unlabelled sentence pairs from teacher scores (task: sts).

Run under accelerate (the workflow's `train_cross` / `distill_bi` rules do it through `bicross.launch`)::

    accelerate launch [...] -m bicross.sts.train cross --pairs data/pairs/unlabelled.parquet \\
        --labels iter0/bi/scores/unlabelled.parquet --out iter1/cross/model \\
        --checkpoints iter1/cross/model.checkpoints --hparams '{"epochs": 1}'
    accelerate launch [...] -m bicross.sts.train bi --pairs data/pairs/unlabelled.parquet \\
        --labels iter1/cross/scores/unlabelled.parquet --out iter1/bi/model ...

cross (bi -> cross): the teachers' cosines, averaged over `--labels` files (two with mutual
distillation) and transformed (clip / minmax / none, optional sharpening), label both orders
(a, b) and (b, a) of every pair; the loss is BCE with logits (`loss: bce`), MSE between
sigmoid(logit) and the label (`loss: mse`), or CoSENT on sigmoid(logit) (`loss: cosent`: rank the batch's
examples like the labels, whatever their scale).
bi (cross -> bi): the cross-encoders' symmetric scores are targets for the cosine of the two sentences'
pooled embeddings: regression (`loss: mse`, sentence-transformers' CosineSimilarityLoss) or ranking
(`loss: cosent`, CoSENT: only the order of the targets within a batch counts, not their scale).

The pairs file has no gold column (bicross.data.sts.unlabelled): gold scores never reach training.
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
import torch
from torch.utils.data import Dataset

from bicross.batching import pad_batch
from bicross.errors import ConfigError, InputError
from bicross.sts.labels import TRANSFORMS, mean_scores, transform_labels
from bicross.sts.score import read_pairs, token_ids
from bicross.tokenize import SpecialTokens
from bicross.trainio import load_hparams

log = logging.getLogger("bicross.sts.train")

COMMON: dict[str, Any] = {
    "gradient_accumulation": 1,
    "warmup_ratio": 0.1,
    "weight_decay": 0.01,
    "max_steps": None,
    "precision": "auto",
    "gradient_checkpointing": False,
    "attention_dropout": 0.0,
    "checkpoint_every": 200,
    "seed": 42,
    "log_every": 10,
    "max_grad_norm": 1.0,
    "keep_checkpoints": 2,
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "cross": {**COMMON, "model": "sentence-transformers/all-MiniLM-L6-v2", "batch_size": 32,
              "learning_rate": 4e-5, "epochs": 1, "max_length": 128, "loss": "bce", "label_transform": "clip",
              "label_sharpen": 0.0, "attn_implementation": "auto", "head_learning_rate": None,
              "cosent_scale": 20.0},
    "bi": {**COMMON, "model": "sentence-transformers/all-MiniLM-L6-v2", "pooling": "auto", "normalize": "auto",
           "batch_size": 32, "learning_rate": 5e-6, "epochs": 1, "max_length": 64,
           "loss": "mse", "cosent_scale": 20.0,
           "label_weights": None},  # one per --labels file (sts.bi_self_weight); None: equal
}


def resolve_hparams(kind: str, given: dict[str, Any] | None) -> dict[str, Any]:
    given = dict(given or {})
    unknown = sorted(set(given) - set(DEFAULTS[kind]))
    if unknown:
        raise ConfigError(f"unknown sts {kind} hyperparameters {unknown}; known: {sorted(DEFAULTS[kind])}")
    hp = {**DEFAULTS[kind], **given}
    if kind == "cross":
        if hp["loss"] not in ("bce", "mse", "cosent"):
            raise ConfigError(f"cross loss must be bce, mse or cosent, got {hp['loss']!r}")
        if hp["label_transform"] not in TRANSFORMS:
            raise ConfigError(f"label_transform must be one of {TRANSFORMS}, got {hp['label_transform']!r}")
    elif hp["loss"] not in ("mse", "cosent"):
        raise ConfigError(f"bi loss must be mse or cosent, got {hp['loss']!r}")
    return hp


def cosent_loss(cosine: torch.Tensor, labels: torch.Tensor, scale: float = 20.0) -> torch.Tensor:
    """CoSENT (Su 2022): log(1 + sum over pairs i, j of the batch with labels[i] > labels[j] of
    exp(scale * (cosine[j] - cosine[i]))). Zero gradient once the cosines rank like the labels by a
    margin; blind to the labels' scale, so the student need not move its cosines onto the teacher's."""
    diff = scale * (cosine[None, :] - cosine[:, None])  # [i, j] = scale * (cos_j - cos_i)
    wrong_way = labels[:, None] > labels[None, :]
    diff = diff.masked_fill(~wrong_way, float("-inf"))
    return torch.logsumexp(torch.cat([diff.new_zeros(1), diff.flatten()]), dim=0)


def uniform_guess(labels: np.ndarray, hp: dict[str, Any]) -> float:
    """The loss of a model that gives every example the same score (the labels' mean where the loss
    regresses), on these training labels."""
    from bicross.learning import bce_uniform, cosent_uniform, mse_uniform

    if hp["loss"] == "cosent":
        return cosent_uniform(labels, hp["batch_size"], hp["seed"])
    return bce_uniform(labels) if hp["loss"] == "bce" else mse_uniform(labels)


class ScoredPairs(Dataset):
    """Token ids of each pair and its label; `both_orders` adds (b, a) after the n pairs (a, b).

    Item i of epoch e comes from a permutation seeded with (seed, e), the same in every process.
    """

    def __init__(self, a: list[list[int]], b: list[list[int]], labels: np.ndarray, seed: int, both_orders: bool):
        self.a, self.b, self.labels = a, b, np.asarray(labels, dtype=np.float32)
        self.n, self.both_orders, self.seed = len(a), both_orders, int(seed)
        self._epoch, self._order = None, None

    def __len__(self) -> int:
        return self.n * (2 if self.both_orders else 1)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self._epoch:
            self._epoch, self._order = epoch, np.random.default_rng([self.seed, int(epoch)]).permutation(len(self))

    def __getitem__(self, i: int) -> tuple[list[int], list[int], float]:
        if self._epoch is None:
            self.set_epoch(0)
        j = int(self._order[i])
        k = j % self.n
        first, second = (self.a[k], self.b[k]) if j < self.n else (self.b[k], self.a[k])
        return first, second, float(self.labels[k])


def load_labelled_pairs(pairs: str, labels: list[str], weights: list[float] | None = None,
                        ) -> tuple[list[str], list[str], list[str], np.ndarray]:
    ids, a, b = read_pairs(pairs)
    if not ids:
        raise InputError(pairs, None, "at least one training pair", "an empty file")
    _, scores = mean_scores(labels, ids, weights)
    return ids, a, b, scores


def train_sts(kind: str, pairs: str, labels: list[str], out: str, checkpoints: str,
              hparams: dict[str, Any] | None = None, log_path: str | None = None,
              stop_after_steps: int | None = None) -> dict[str, Any]:
    """Train a cross-encoder (kind "cross") or a bi-encoder ("bi") on scored pairs; save it to `out`."""
    from bicross.encode import forward_keys
    from bicross.training import file_signature, finish, learning_check, save_final, start, train

    hp = resolve_hparams(kind, hparams)
    accelerator, config = start(hp, log_path)
    _, a, b, scores = load_labelled_pairs(pairs, labels, hp.get("label_weights"))
    settings = {"kind": kind, "hparams": hp, "inputs": [file_signature(p) for p in (pairs, *labels)]}

    if kind == "cross":
        from bicross.train_cross import head_rate_for, load_cross_init, training_attention

        targets = transform_labels(scores, hp["label_transform"], float(hp["label_sharpen"]))
        head_rate_for(hp["model"], config)
        model, tokenizer = load_cross_init(hp["model"], hp["attention_dropout"],
                                           training_attention(hp["attn_implementation"], accelerator.device))
        special = SpecialTokens.probe(tokenizer)
        length = int(hp["max_length"])
        data = ScoredPairs(token_ids(tokenizer, a, length), token_ids(tokenizer, b, length), targets,
                           hp["seed"], both_orders=True)
        keys = forward_keys(model)
        bce, mse = torch.nn.BCEWithLogitsLoss(), torch.nn.MSELoss()

        def collate(items):
            cut = [special.pair(x, y, length) for x, y, _ in items]
            batch = pad_batch([c[0] for c in cut], special.pad_id, [c[1] for c in cut])
            return {"inputs": {k: v for k, v in batch.items() if k in keys},
                    "labels": torch.tensor([t for _, _, t in items], dtype=torch.float32)}

        def loss_fn(model, batch):
            logits = model(**batch["inputs"]).logits.view(-1).float()
            if hp["loss"] == "bce":
                return bce(logits, batch["labels"])
            if hp["loss"] == "cosent":
                return cosent_loss(torch.sigmoid(logits), batch["labels"], float(hp["cosent_scale"]))
            return mse(torch.sigmoid(logits), batch["labels"])

        def save(unwrapped, path: Path) -> None:
            unwrapped.save_pretrained(path)
            tokenizer.save_pretrained(path)
            (path / "training.json").write_text(json.dumps(summary, indent=1))
    else:
        from transformers import AutoModel

        from bicross.models import load_bi_encoder, pool, resolve_model_path, save_bi_encoder

        encoder = load_bi_encoder(hp["model"], pooling=hp["pooling"], normalize=hp["normalize"])
        model = AutoModel.from_pretrained(resolve_model_path(hp["model"]),
                                          attention_probs_dropout_prob=float(hp["attention_dropout"]))
        special = SpecialTokens.probe(encoder.tokenizer)
        room = int(hp["max_length"]) - special.single_extra
        data = ScoredPairs(token_ids(encoder.tokenizer, a, room), token_ids(encoder.tokenizer, b, room), scores,
                           hp["seed"], both_orders=False)
        keys, cfg = forward_keys(model), encoder.pooling
        mse = torch.nn.MSELoss()

        def side(seqs):
            batch = pad_batch([special.single(s) for s in seqs], special.pad_id)
            return {k: v for k, v in batch.items() if k in keys}

        def collate(items):
            return {"a": side([x for x, _, _ in items]), "b": side([y for _, y, _ in items]),
                    "labels": torch.tensor([t for _, _, t in items], dtype=torch.float32)}

        def embed(model, inputs):
            return pool(model(**inputs).last_hidden_state, inputs["attention_mask"], cfg)

        def loss_fn(model, batch):
            cosine = torch.nn.functional.cosine_similarity(embed(model, batch["a"]), embed(model, batch["b"]))
            if hp["loss"] == "cosent":
                return cosent_loss(cosine.float(), batch["labels"], float(hp["cosent_scale"]))
            return mse(cosine, batch["labels"])

        cfg.max_length = cfg.max_length or int(hp["max_length"])

        def save(unwrapped, path: Path) -> None:
            save_bi_encoder(unwrapped, encoder.tokenizer, cfg, path)
            (path / "training.json").write_text(json.dumps(summary, indent=1))

    if accelerator.is_main_process:
        log.info("%d training pairs (%d examples), teacher scores from %s: mean %.3f, std %.3f", data.n, len(data),
                 ", ".join(labels), float(scores.mean()), float(scores.std()))
    model, result = train(accelerator, model, data, collate, loss_fn, config, checkpoints, settings=settings,
                          count_fn=lambda batch: int(batch["labels"].shape[0]), unit="pair",
                          stop_after_steps=stop_after_steps)
    summary = {"kind": kind, "hparams": hp, "train_pairs": data.n, "examples_per_epoch": len(data),
               "num_processes": accelerator.num_processes, "mixed_precision": accelerator.mixed_precision,
               "config": asdict(config), **result.to_dict(),
               "learning": learning_check(accelerator, result, uniform_guess(data.labels, hp),
                                          "the cross-encoder" if kind == "cross" else "the bi-encoder")}
    save_final(accelerator, model, out, save)
    finish(accelerator, checkpoints)
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bicross.sts.train", description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=["cross", "bi"], help="which encoder to train")
    parser.add_argument("--pairs", required=True, help="Parquet: pair_id, text_a, text_b (no gold scores)")
    parser.add_argument("--labels", required=True, nargs="+", help="teacher PAIR_SCORES Parquet file(s), averaged")
    parser.add_argument("--out", required=True, help="model directory to create")
    parser.add_argument("--checkpoints", required=True, help="checkpoint directory (resumed from if present)")
    parser.add_argument("--hparams", default=None, help="JSON object, or a JSON/YAML file, of hyperparameters")
    parser.add_argument("--log", default=None, help="also append the log to this file")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process")
    parser.add_argument("--stop-after-steps", type=int, default=None, help=argparse.SUPPRESS)  # tests
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    train_sts(args.kind, args.pairs, args.labels, args.out, args.checkpoints, load_hparams(args.hparams),
              log_path=args.log, stop_after_steps=args.stop_after_steps)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
