"""Tokenize queries and documents once, to Parquet `input_ids` without special tokens.

Storing ids without special tokens lets the same file feed the bi-encoder ([CLS] q [SEP]) and the
cross-encoder ([CLS] q [SEP] d [SEP]); `SpecialTokens` adds them at batching time, using the
template the tokenizer itself applies (probed, so BERT, RoBERTa and others all work).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from bicross.schemas import TOKENS, AtomicParquetWriter

log = logging.getLogger("bicross.tokenize")


@dataclass(frozen=True)
class SpecialTokens:
    """Special-token template: single = prefix + a + suffix; pair = prefix + a + middle + b + suffix."""

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]
    pair_middle: tuple[int, ...]
    pair_suffix: tuple[int, ...]
    pad_id: int

    @classmethod
    def probe(cls, tokenizer) -> SpecialTokens:
        a = tokenizer("a", add_special_tokens=False)["input_ids"]
        b = tokenizer("b", add_special_tokens=False)["input_ids"]
        single = tokenizer("a")["input_ids"]
        pair = tokenizer("a", "b")["input_ids"]
        i = _find(single, a)
        prefix, suffix = single[:i], single[i + len(a) :]
        j = _find(pair, b, start=len(prefix) + len(a))
        middle, pair_suffix = pair[len(prefix) + len(a) : j], pair[j + len(b) :]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        return cls(tuple(prefix), tuple(suffix), tuple(middle), tuple(pair_suffix), pad)

    @property
    def single_extra(self) -> int:
        return len(self.prefix) + len(self.suffix)

    @property
    def pair_extra(self) -> int:
        return len(self.prefix) + len(self.pair_middle) + len(self.pair_suffix)

    def single(self, ids) -> list[int]:
        return [*self.prefix, *ids, *self.suffix]

    def pair(self, a, b, max_length: int) -> tuple[list[int], list[int]]:
        """[CLS] a [SEP] b [SEP], cutting b first (then a) to fit; also returns token type ids."""
        room = max_length - self.pair_extra
        a = list(a)[: max(room // 2, room - len(b))]
        b = list(b)[: room - len(a)]
        first = [*self.prefix, *a, *self.pair_middle]
        ids = first + [*b, *self.pair_suffix]
        # BERT-style segment ids: the second segment starts after the middle separator
        return ids, [0] * len(first) + [1] * (len(ids) - len(first))


class FastTokenizer:
    """A Hugging Face fast tokenizer's `tokenizers` backend read straight from its tokenizer.json, called as a
    transformers tokenizer is (text or texts, an optional pair, special tokens, truncation). It gives the
    ids AutoTokenizer gives without importing transformers, which imports torch: a tokenize job on a CPU
    starts ~3.6 s sooner (tests/test_tokenize_models.py compares both on the packaged and installed models)."""

    def __init__(self, folder):
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.backend.no_padding()  # truncation is set per call
        config = folder / "tokenizer_config.json"
        pad = json.loads(config.read_text()).get("pad_token") if config.is_file() else None
        if isinstance(pad, dict):  # an AddedToken written out
            pad = pad.get("content")
        self.pad_token_id = self.backend.token_to_id(pad) if pad else None

    def __call__(self, text, text_pair=None, add_special_tokens: bool = True, truncation: bool = False,
                 max_length: int | None = None) -> dict[str, list]:
        if truncation and max_length is not None:
            self.backend.enable_truncation(max_length)
        else:
            self.backend.no_truncation()
        if isinstance(text, str):
            pair = () if text_pair is None else (text_pair,)
            return {"input_ids": self.backend.encode(text, *pair, add_special_tokens=add_special_tokens).ids}
        inputs = text if text_pair is None else list(zip(text, text_pair, strict=True))
        encodings = self.backend.encode_batch(inputs, add_special_tokens=add_special_tokens)
        return {"input_ids": [e.ids for e in encodings]}


def _find(seq: list[int], sub: list[int], start: int = 0) -> int:
    for i in range(start, len(seq) - len(sub) + 1):
        if seq[i : i + len(sub)] == sub:
            return i
    raise ValueError(f"tokenizer template probe failed: {sub} not in {seq}")


def tokenize_to_parquet(
    tokenizer,
    ids: Iterable[str],
    texts: Iterable[str],
    max_length: int,
    out_path,
    chunk_size: int = 20_000,
    desc: str = "tokenize",
) -> int:
    """Tokenize (id, text) pairs chunk by chunk into a TOKENS Parquet file; returns the row count."""
    ids, texts = list(ids), list(texts)
    room = max_length - SpecialTokens.probe(tokenizer).single_extra
    n = 0
    with AtomicParquetWriter(out_path, TOKENS) as writer, tqdm(
        total=len(ids), desc=desc, unit="text", mininterval=5
    ) as bar:
        for start in range(0, len(ids), chunk_size):
            chunk = texts[start : start + chunk_size]
            enc = tokenizer(chunk, add_special_tokens=False, truncation=True, max_length=room)
            writer.write(
                pa.table(
                    {
                        "id": pa.array(ids[start : start + chunk_size], pa.string()),
                        "input_ids": pa.array(enc["input_ids"], pa.list_(pa.int32())),
                    }
                )
            )
            n += len(chunk)
            bar.update(len(chunk))
    log.info("tokenized %d texts (max %d tokens with special tokens) -> %s", n, max_length, out_path)
    return n


def document_text(title: str, text: str) -> str:
    """How a document reads to the encoders: title and body joined by a space (BEIR's convention)."""
    return f"{title} {text}".strip() if title else text


def read_tokens(path, rows: slice | None = None) -> tuple[list[str], list[list[int]]]:
    """Read a TOKENS file, optionally a row range of it (one encode shard)."""
    table = pq.read_table(path)
    if rows is not None:
        table = table.slice(rows.start, rows.stop - rows.start)
    return table.column("id").to_pylist(), table.column("input_ids").to_pylist()


class TokenStore:
    """Random access to a TOKENS file by id, without a Python dict over millions of rows."""

    def __init__(self, path):
        self.path = path
        self.table = pq.read_table(path)
        self._ids = self.table.column("id").combine_chunks()

    def get(self, ids: list[str]) -> list[list[int]]:
        """Token ids for `ids`, in that order; an id the file lacks is an InputError naming it."""
        import pyarrow.compute as pc

        from bicross.errors import InputError

        wanted = pa.array(ids, pa.string())
        rows = pc.index_in(wanted, value_set=self._ids)
        if rows.null_count:
            missing = [i for i, r in zip(ids, rows.to_pylist(), strict=True) if r is None][:5]
            raise InputError(self.path, None, "token ids for every requested id", f"none for {missing}")
        return self.table.column("input_ids").take(rows).to_pylist()
