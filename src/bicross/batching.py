"""Length-sorted batching: one batcher for encoding, scoring and inference.

Sorting by length before batching means each batch pads to nearly its own length, which on
real corpora cuts the tokens a transformer sees by a large factor.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[np.ndarray]:
    """Yield index arrays, longest first (an out-of-memory error shows up in the first batch)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def pad_batch(
    sequences: Sequence[Sequence[int]], pad_id: int, token_types: Sequence[Sequence[int]] | None = None
) -> dict[str, torch.Tensor]:
    """Right-pad to the longest sequence; returns input_ids, attention_mask and token_type_ids."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    types = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        ids[i, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[i, : len(seq)] = 1
        if token_types is not None:
            types[i, : len(seq)] = torch.as_tensor(token_types[i], dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
