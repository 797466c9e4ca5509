"""Bi-encoder inference: token ids -> pooled (normalised) embeddings, fast on CPU and GPU."""

from __future__ import annotations

import inspect
import logging

import numpy as np
import torch
from tqdm.auto import tqdm

from bicross.batching import length_sorted_batches, pad_batch
from bicross.devices import autocast
from bicross.models import BiEncoder, pool
from bicross.tokenize import SpecialTokens

log = logging.getLogger("bicross.encode")


def forward_keys(model: torch.nn.Module) -> set[str]:
    """The batch keys a model's forward accepts (DistilBERT, for one, takes no token_type_ids)."""
    params = inspect.signature(model.forward).parameters
    return {k for k in ("input_ids", "attention_mask", "token_type_ids") if k in params}


@torch.inference_mode()
def encode_ids(
    encoder: BiEncoder,
    sequences: list[list[int]],
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype,
    desc: str = "encode",
) -> np.ndarray:
    """Embed token-id sequences (without special tokens) in length-sorted batches; float32 (n, dim)."""
    special = SpecialTokens.probe(encoder.tokenizer)
    model = encoder.model.to(device).eval()
    dim = model.config.hidden_size
    keys = forward_keys(model)
    out = np.zeros((len(sequences), dim), dtype=np.float32)
    with tqdm(total=len(sequences), desc=desc, unit="text", mininterval=5) as bar:
        for index in length_sorted_batches([len(s) for s in sequences], batch_size):
            batch = pad_batch([special.single(sequences[i]) for i in index], special.pad_id)
            batch = {k: v.to(device) for k, v in batch.items() if k in keys}
            with autocast(device, dtype):
                hidden = model(**batch).last_hidden_state
            out[index] = pool(hidden, batch["attention_mask"], encoder.pooling).cpu().numpy()
            bar.update(len(index))
    return out
