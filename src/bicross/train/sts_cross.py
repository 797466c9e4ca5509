"""Task sts, bi -> cross: a cross-encoder learns the bi-encoders' cosines of unlabelled pairs (Trans-Encoder).

The teachers' cosines, averaged over the `--labels` files (two with mutual distillation) and transformed
(clip / minmax / none, optional sharpening), label both orders (a, b) and (b, a) of every pair; the
loss is BCE with logits (`loss: bce`), MSE between sigmoid(logit) and the label (`loss: mse`), or
CoSENT on sigmoid(logit) (`loss: cosent`: rank the batch's examples like the labels, whatever their
scale); all three in bicross.losses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bicross.errors import ConfigError
from bicross.hparams import setting
from bicross.sts.labels import TRANSFORMS, transform_labels
from bicross.train import Job, pick
from bicross.train.cross import CrossSettings, load_for_training
from bicross.train.scored_pairs import (
    INPUTS,
    MANY,
    ScoredPairs,
    load_labelled_pairs,
    log_labels,
    uniform_guess,
)

log = logging.getLogger("bicross.train.sts_cross")

__all__ = ["INPUTS", "MANY", "Hparams", "from_config", "prepare"]
LOSSES = ("bce", "mse", "cosent")
SEED_OFFSET = 0
SECTIONS = ("cross_encoder", "sts")  # what from_config reads (the model card shows it)


@dataclass
class Hparams(CrossSettings):
    """The STS cross-encoder's settings (defaults: the schema's cross_encoder and sts sections)."""

    loss: str = setting("bce", "bce | mse | cosent (sts.cross_loss)")
    label_transform: str = setting("clip", "cosine -> label: clip to [0, 1] | minmax | none (sts.label_transform)")
    label_sharpen: float = setting(0.0, "push labels away from their mean by this factor; 0: off")
    cosent_scale: float = setting(20.0, "CoSENT's scale (lambda)")

    def validate(self) -> None:
        super().validate()
        if self.loss not in LOSSES:
            raise ConfigError(f"cross loss must be bce, mse or cosent, got {self.loss!r}")
        if self.label_transform not in TRANSFORMS:
            raise ConfigError(f"label_transform must be one of {TRANSFORMS}, got {self.label_transform!r}")


def from_config(sections: dict[str, dict[str, Any]], model: str, seed: int, families: int) -> dict[str, Any]:
    """The cross_encoder section and the sts section's cross-encoder keys (this iteration's values)."""
    sts = sections["sts"]
    return {**pick(Hparams, sections["cross_encoder"]), "loss": sts["cross_loss"],
            "label_transform": sts["label_transform"], "label_sharpen": sts["label_sharpen"],
            "cosent_scale": sts["cosent_scale"], "model": model, "seed": seed}


def prepare(hp: Hparams, inputs: dict[str, Any], accelerator):
    import torch

    from bicross.batching import pad_batch
    from bicross.encode import forward_keys
    from bicross.losses import CoSENT, PairBCE, PairMSE
    from bicross.sts.score import token_ids

    _, a, b, scores = load_labelled_pairs(inputs["pairs"], inputs["labels"])
    targets = transform_labels(scores, hp.label_transform, float(hp.label_sharpen))
    encoder = load_for_training(hp, accelerator)
    special, length = encoder.special, int(hp.max_length)
    data = ScoredPairs(token_ids(encoder.tokenizer, a, length), token_ids(encoder.tokenizer, b, length), targets,
                       hp.seed, both_orders=True)
    keys = forward_keys(encoder.model)
    criterion = {"bce": PairBCE(), "mse": PairMSE(), "cosent": CoSENT(hp.cosent_scale)}[hp.loss]

    def collate(items):
        cut = [special.pair(x, y, length) for x, y, _ in items]
        batch = pad_batch([c[0] for c in cut], special.pad_id, [c[1] for c in cut])
        return {"inputs": {k: v for k, v in batch.items() if k in keys},
                "labels": torch.tensor([t for _, _, t in items], dtype=torch.float32)}

    def loss_fn(model, batch):
        logits = model(**batch["inputs"]).logits.view(-1).float()
        return criterion(logits if hp.loss == "bce" else torch.sigmoid(logits), batch["labels"])

    def save(unwrapped, path: Path) -> None:
        unwrapped.save_pretrained(path)
        encoder.tokenizer.save_pretrained(path)

    log_labels(log, accelerator, data, inputs["labels"], scores)
    return Job(model=encoder.model, dataset=data, collate=collate, loss_fn=loss_fn,
               count_fn=lambda batch: int(batch["labels"].shape[0]), save=save, unit="pair", who="the cross-encoder",
               uniform=uniform_guess(data.labels, hp.loss, hp.batch_size, hp.seed),
               info={"train_pairs": data.n, "examples_per_epoch": len(data)})
