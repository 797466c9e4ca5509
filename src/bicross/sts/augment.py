"""More unlabelled training pairs from the training sentences (sts.augment, AugSBERT-style sampling).

STS-B train has 5,749 pairs: a cross-encoder that copies its teacher's cosines on them (Spearman 0.98)
agrees with it far less on unseen pairs (0.94). New pairs are built from the *same sentences* only, so no
evaluated text and no gold score is involved:

- `neighbours`: each sentence with its k nearest other sentences under bi-encoder 0 (semantic-search
  sampling: mostly related pairs, the informative end of the similarity scale);
- `random`: each sentence with r random others (mostly unrelated pairs, to keep the low end).

Pairs already present (in either order) and repeats are skipped. New ids are `aug:nn:<n>` / `aug:rand:<n>`,
appended after the original pairs, whose rows stay as they are.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bicross.schemas import PAIR_TEXTS

log = logging.getLogger("bicross.sts")


def _key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def training_sentences(pairs: pa.Table) -> list[str]:
    """Distinct sentences of a pairs table, in first-seen order (deterministic for a given file)."""
    seen: dict[str, None] = {}
    for a, b in zip(pairs.column("text_a").to_pylist(), pairs.column("text_b").to_pylist(), strict=True):
        seen.setdefault(a)
        seen.setdefault(b)
    return list(seen)


def neighbour_pairs(sentences: list[str], embeddings: np.ndarray, k: int, taken: set) -> list[tuple[str, str]]:
    """Each sentence with its k nearest other sentences by inner product (exact search); pairs in `taken`
    (updated in place) are skipped, not replaced by farther ones, so mutual neighbours make one pair."""
    import faiss

    if k <= 0 or len(sentences) < 2:
        return []
    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    index = faiss.IndexFlatIP(emb.shape[1])
    index.add(emb)
    _, nearest = index.search(emb, min(len(sentences), k + 1))  # + 1: the sentence itself
    out = []
    for i, row in enumerate(nearest):
        for j in [int(j) for j in row if j >= 0 and j != i][:k]:
            key = _key(sentences[i], sentences[j])
            if key not in taken:
                taken.add(key)
                out.append((sentences[i], sentences[j]))
    return out


def random_pairs(sentences: list[str], r: int, taken: set, seed: int) -> list[tuple[str, str]]:
    """Up to r new pairs per sentence with uniformly drawn other sentences, skipping `taken` ones."""
    n = len(sentences)
    if r <= 0 or n < 2:
        return []
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        added = 0
        # a few spare draws absorb collisions with taken pairs; a sentence may still get fewer than r
        for j in rng.integers(0, n - 1, size=r + 4):
            j = int(j) + int(j >= i)  # uniform over the others, never i itself
            key = _key(sentences[i], sentences[j])
            if key in taken:
                continue
            taken.add(key)
            out.append((sentences[i], sentences[j]))
            added += 1
            if added == r:
                break
    return out


def augment(pairs: pa.Table, embeddings: np.ndarray | None, *, neighbours: int = 0, random: int = 0,
            seed: int = 0) -> pa.Table:
    """`pairs` (PAIR_TEXTS) followed by the new neighbour and random pairs of its sentences.

    `embeddings` are bi-encoder 0's unit vectors of `training_sentences(pairs)`, row for row (needed only
    when neighbours > 0).
    """
    sentences = training_sentences(pairs)
    taken = {_key(a, b) for a, b in zip(pairs.column("text_a").to_pylist(), pairs.column("text_b").to_pylist(),
                                         strict=True)}
    near = []
    if neighbours > 0:
        if embeddings is None or len(embeddings) != len(sentences):
            raise ValueError(f"need one embedding per training sentence ({len(sentences)}), got "
                             f"{None if embeddings is None else len(embeddings)}")
        near = neighbour_pairs(sentences, embeddings, neighbours, taken)
    rand = random_pairs(sentences, random, taken, seed)
    new = [(f"aug:nn:{n}", a, b) for n, (a, b) in enumerate(near)]
    new += [(f"aug:rand:{n}", a, b) for n, (a, b) in enumerate(rand)]
    log.info("%d training pairs, %d sentences: + %d neighbour pairs + %d random pairs", pairs.num_rows,
             len(sentences), len(near), len(rand))
    extra = pa.table({"pair_id": [p[0] for p in new], "text_a": [p[1] for p in new], "text_b": [p[2] for p in new]},
                     schema=PAIR_TEXTS)
    return pa.concat_tables([pairs.select(PAIR_TEXTS.names).cast(PAIR_TEXTS), extra])


def augment_file(pairs_path: str, out: str, *, model: str, neighbours: int, random: int, seed: int,
                 max_length: int, batch_size: int = 128, precision: str = "auto", threads: int | None = None,
                 pooling: str = "auto", normalize: str | bool = "auto") -> int:
    """The workflow step: read the unlabelled pairs, embed their sentences with `model` when neighbours
    are asked for, write the augmented pairs. Returns the number of pairs written."""
    from bicross import devices
    from bicross.schemas import write_table

    pairs = pq.read_table(pairs_path, columns=PAIR_TEXTS.names)
    embeddings = None
    if neighbours > 0:
        from bicross.models import load_bi_encoder
        from bicross.sts.score import sentence_embeddings

        devices.set_threads(threads)
        device = devices.pick_device()
        encoder = load_bi_encoder(model, pooling=pooling, normalize=normalize)
        embeddings = sentence_embeddings(encoder, training_sentences(pairs), max_length=max_length,
                                         batch_size=batch_size, device=device,
                                         dtype=devices.resolve_precision(precision, device))
    table = augment(pairs, embeddings, neighbours=neighbours, random=random, seed=seed)
    write_table(table, out, PAIR_TEXTS)
    return table.num_rows
