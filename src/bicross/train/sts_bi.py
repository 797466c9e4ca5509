"""Task sts, cross -> bi: a bi-encoder learns the cross-encoders' scores of unlabelled pairs (Trans-Encoder).

The cross-encoders' symmetric scores (averaged over the `--labels` files, weighted by `label_weights`:
with sts.bi_self_weight the bi-encoder's own previous cosines are the last file) are targets for the
cosine of the two sentences' pooled embeddings: regression (`loss: mse`, sentence-transformers'
CosineSimilarityLoss) or ranking (`loss: cosent`: only the order of the targets within a batch counts,
not their scale); both in bicross.losses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bicross.errors import ConfigError
from bicross.hparams import setting
from bicross.sts.labels import family_weights
from bicross.tokenize import SpecialTokens
from bicross.train import Job, pick
from bicross.train.distill import BiSettings
from bicross.train.scored_pairs import (
    INPUTS,
    MANY,
    ScoredPairs,
    load_labelled_pairs,
    log_labels,
    uniform_guess,
)

log = logging.getLogger("bicross.train.sts_bi")

__all__ = ["INPUTS", "MANY", "Hparams", "from_config", "prepare"]
LOSSES = ("mse", "cosent")
SEED_OFFSET = 1000
SECTIONS = ("distill", "bi_encoder", "sts")  # what from_config reads (the model card shows it)


@dataclass
class Hparams(BiSettings):
    """The STS bi-encoder's settings (defaults: the schema's distill, bi_encoder and sts sections)."""

    max_length: int = setting(64, "tokens per sentence (sts.max_length)")
    loss: str = setting("mse", "mse | cosent (sts.bi_loss)")
    cosent_scale: float = setting(20.0, "CoSENT's scale (lambda)")
    label_weights: list[float] | None = setting(None, "one weight per --labels file; null: equal")

    def validate(self) -> None:
        super().validate()
        if self.loss not in LOSSES:
            raise ConfigError(f"bi loss must be mse or cosent, got {self.loss!r}")


def label_weights(self_weight: float, families: int, cross_weights: list[float] | None = None) -> list[float] | None:
    """sts.bi_self_weight w: the cross-encoders share 1 - w (equally, or by sts.mutual.cross_weights), the
    bi-encoder's own previous scores (the last labels file) get w; None (equal weights) when both are unset."""
    w = float(self_weight)
    if not w and cross_weights is None:
        return None
    shares = [(1 - w) * share for share in family_weights(cross_weights, families)]
    return shares + [w] if w else shares


def from_config(sections: dict[str, dict[str, Any]], model: str, seed: int, families: int) -> dict[str, Any]:
    """The distill section, the bi-encoder's pooling and the sts section's bi-encoder keys (this
    iteration's values)."""
    sts, bi = sections["sts"], sections["bi_encoder"]
    mutual = sts.get("mutual") or {}  # .get: the second family is not a per-iteration training setting
    weights = label_weights(sts["bi_self_weight"], families, mutual.get("cross_weights"))
    return {**pick(Hparams, sections["distill"]), "pooling": bi["pooling"], "normalize": bi["normalize"],
            "max_length": sts["max_length"], "loss": sts["bi_loss"], "cosent_scale": sts["cosent_scale"],
            "label_weights": weights, "model": model, "seed": seed}


def prepare(hp: Hparams, inputs: dict[str, Any], accelerator):
    import torch

    from bicross.batching import pad_batch
    from bicross.encode import forward_keys
    from bicross.losses import CoSENT, PairMSE
    from bicross.models import load_bi_encoder, pool, save_bi_encoder
    from bicross.sts.score import token_ids

    _, a, b, scores = load_labelled_pairs(inputs["pairs"], inputs["labels"], hp.label_weights)
    encoder = load_bi_encoder(hp.model, pooling=hp.pooling, normalize=hp.normalize,
                              attention_dropout=hp.attention_dropout)
    special = SpecialTokens.probe(encoder.tokenizer)
    room = int(hp.max_length) - special.single_extra
    data = ScoredPairs(token_ids(encoder.tokenizer, a, room), token_ids(encoder.tokenizer, b, room), scores,
                       hp.seed, both_orders=False)
    keys, cfg = forward_keys(encoder.model), encoder.pooling
    criterion = CoSENT(hp.cosent_scale) if hp.loss == "cosent" else PairMSE()

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
        return criterion(cosine, batch["labels"])

    cfg.max_length = cfg.max_length or int(hp.max_length)

    def save(unwrapped, path: Path) -> None:
        save_bi_encoder(unwrapped, encoder.tokenizer, cfg, path)

    log_labels(log, accelerator, data, inputs["labels"], scores)
    return Job(model=encoder.model, dataset=data, collate=collate, loss_fn=loss_fn,
               count_fn=lambda batch: int(batch["labels"].shape[0]), save=save, unit="pair", who="the bi-encoder",
               uniform=uniform_guess(data.labels, hp.loss, hp.batch_size, hp.seed),
               info={"train_pairs": data.n, "examples_per_epoch": len(data)})
