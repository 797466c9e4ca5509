"""The one cross-encoder: rerank runs, teacher scores and STS scores call its scorer; training loads it too."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from bicross.batching import length_sorted_batches, pad_batch
from bicross.devices import autocast
from bicross.encode import forward_keys
from bicross.models import resolve_model_path
from bicross.tokenize import SpecialTokens

log = logging.getLogger("bicross.score")


class CrossEncoder:
    """A sequence-classification model with one logit per (query, document) pair."""

    def __init__(self, name: str, model=None, tokenizer=None):
        if model is None:
            path = resolve_model_path(name)
            model = AutoModelForSequenceClassification.from_pretrained(path).eval()
            tokenizer = AutoTokenizer.from_pretrained(path)
        self.model, self.tokenizer = model, tokenizer
        self.special = SpecialTokens.probe(self.tokenizer)
        if self.model.config.num_labels != 1:
            raise ValueError(f"{name}: a cross-encoder needs num_labels=1, got {self.model.config.num_labels}")

    @classmethod
    def for_training(cls, name: str, attention_dropout: float = 0.0,
                     attn_implementation: str | None = None) -> CrossEncoder:
        """The model to train: a saved cross-encoder as it is, or a new 1-logit head on an encoder (a
        bi-encoder checkpoint), with the given attention dropout and kernel."""
        from transformers import AutoConfig

        from bicross.models import dropout_overrides

        path = resolve_model_path(name)
        overrides = {"num_labels": 1, **dropout_overrides(AutoConfig.from_pretrained(path), attention_dropout)}
        if attn_implementation:
            overrides["attn_implementation"] = attn_implementation
        model = AutoModelForSequenceClassification.from_pretrained(path, ignore_mismatched_sizes=True, **overrides)
        return cls(name, model, AutoTokenizer.from_pretrained(path))

    @torch.inference_mode()
    def score(
        self,
        queries: Sequence[Sequence[int]],
        docs: Sequence[Sequence[int]],
        max_length: int,
        batch_size: int,
        device: torch.device,
        dtype: torch.dtype,
        desc: str = "score",
    ) -> np.ndarray:
        """Logits for pairs (queries[i], docs[i]) in length-sorted batches; float32 (n,)."""
        model = self.model.to(device)
        keys = forward_keys(model)
        lengths = [min(len(q) + len(d) + self.special.pair_extra, max_length)
                   for q, d in zip(queries, docs, strict=True)]
        out = np.zeros(len(lengths), dtype=np.float32)
        with tqdm(total=len(lengths), desc=desc, unit="pair", mininterval=5) as bar:
            for index in length_sorted_batches(lengths, batch_size):
                pairs = [self.special.pair(queries[i], docs[i], max_length) for i in index]
                batch = pad_batch([p[0] for p in pairs], self.special.pad_id, [p[1] for p in pairs])
                batch = {k: v.to(device) for k, v in batch.items() if k in keys}
                with autocast(device, dtype):
                    logits = model(**batch).logits
                out[index] = logits.float().view(-1).cpu().numpy()
                bar.update(len(index))
        return out
