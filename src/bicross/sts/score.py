"""Score sentence pairs: bi-encoder cosine, cross-encoder symmetric score (mean sigmoid of both orders).

Sentence pairs are few and short (STS-B train: 5,749 pairs), so each job tokenizes its own texts
instead of going through the `tokens/` artifacts of the retrieval regime.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bicross.schemas import PAIR_SCORES, write_table

log = logging.getLogger("bicross.sts")


def read_pairs(path) -> tuple[list[str], list[str], list[str]]:
    """pair_id, text_a, text_b of a pairs file, never its gold scores. In an evaluation split (a file with a
    gold column) only the labelled pairs are read: unlabelled ones would be scored for nothing."""
    import pyarrow.compute as pc

    if "gold" in pq.read_schema(path).names:
        table = pq.read_table(path, columns=["pair_id", "text_a", "text_b", "gold"])
        table = table.filter(pc.is_valid(table.column("gold"))).drop_columns(["gold"])
    else:
        table = pq.read_table(path, columns=["pair_id", "text_a", "text_b"])
    return (table.column("pair_id").to_pylist(), table.column("text_a").to_pylist(),
            table.column("text_b").to_pylist())


def token_ids(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Ids without special tokens, cut to `max_length` (bicross.tokenize.SpecialTokens adds them)."""
    return tokenizer(texts, add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]


def sentence_embeddings(encoder, sentences: list[str], *, max_length: int, batch_size: int, device,
                        dtype) -> np.ndarray:
    """Unit-length bi-encoder embeddings of `sentences` (float32, one row each)."""
    from bicross.encode import encode_ids
    from bicross.tokenize import SpecialTokens

    room = max_length - SpecialTokens.probe(encoder.tokenizer).single_extra
    emb = encode_ids(encoder, token_ids(encoder.tokenizer, sentences, room), batch_size, device, dtype,
                     desc="encode sentences")
    return (emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def bi_cosines(encoder, a: list[str], b: list[str], *, max_length: int, batch_size: int, device, dtype) -> np.ndarray:
    """Cosine of each pair's embeddings; every distinct sentence is encoded once."""
    sentences = sorted(set(a) | set(b))
    where = {s: i for i, s in enumerate(sentences)}
    emb = sentence_embeddings(encoder, sentences, max_length=max_length, batch_size=batch_size, device=device,
                              dtype=dtype)
    ia = np.fromiter((where[s] for s in a), dtype=np.int64, count=len(a))
    ib = np.fromiter((where[s] for s in b), dtype=np.int64, count=len(b))
    return np.einsum("ij,ij->i", emb[ia], emb[ib]).astype(np.float32)


def cross_symmetric(cross, a: list[str], b: list[str], *, max_length: int, batch_size: int, device,
                    dtype) -> np.ndarray:
    """Mean of sigmoid(logit) over both orders (a, b) and (b, a): a symmetric similarity in [0, 1]."""
    ids_a = token_ids(cross.tokenizer, a, max_length)
    ids_b = token_ids(cross.tokenizer, b, max_length)
    ab = cross.score(ids_a, ids_b, max_length, batch_size, device, dtype, desc="score a-b")
    ba = cross.score(ids_b, ids_a, max_length, batch_size, device, dtype, desc="score b-a")
    sig = lambda x: 1.0 / (1.0 + np.exp(-x.astype(np.float64)))  # noqa: E731
    return ((sig(ab) + sig(ba)) / 2).astype(np.float32)


def score_pairs(encoder_kind: str, model: str, pairs: list[str], outs: list[str], *, max_length: int,
                batch_size: int = 64, precision: str = "auto", threads: int | None = None, pooling: str = "auto",
                normalize: str | bool = "auto", part: int = 0, parts: int = 1) -> None:
    """PAIR_SCORES for every pair of each `pairs` file (into the matching `outs` file), the model loaded
    once: a bi-encoder's cosine, or a cross-encoder's symmetric score. Part `part` of `parts` scores its
    share of each file's pairs (bicross.parts.shard_rows)."""
    from bicross import devices
    from bicross.parts import shard_rows

    devices.set_threads(threads)
    device = devices.pick_device()
    dtype = devices.resolve_precision(precision, device)
    if encoder_kind == "bi":
        from bicross.models import load_bi_encoder

        encoder = load_bi_encoder(model, pooling=pooling, normalize=normalize)
        scorer = bi_cosines
    elif encoder_kind == "cross":
        from bicross.score import CrossEncoder

        encoder, scorer = CrossEncoder(model), cross_symmetric
    else:
        raise ValueError(f"encoder must be bi or cross, got {encoder_kind!r}")
    for path, out in zip(pairs, outs, strict=True):
        ids, a, b = read_pairs(path)
        rows = shard_rows(len(ids), part, parts)
        ids, a, b = ids[rows], a[rows], b[rows]
        start = time.perf_counter()
        scores = (scorer(encoder, a, b, max_length=max_length, batch_size=batch_size, device=device, dtype=dtype)
                  if ids else np.zeros(0, np.float32))  # an empty part: more parts than pairs
        log.info("%s scores for %d pairs of %s (part %d/%d) in %.1f s", encoder_kind, len(ids), path, part + 1, parts,
                 time.perf_counter() - start)
        write_table(pa.table({"pair_id": ids, "score": scores}), out, PAIR_SCORES)
