"""Exports to the formats other tools read: TREC run files (and, later, FlagEmbedding JSONL)."""

from __future__ import annotations

import pyarrow.parquet as pq

from bicross.schemas import write_text_atomic


def run_to_trec(run_path, out_path, tag: str = "bicross") -> int:
    """`qid Q0 docid rank score tag` per line, in rank order; returns the line count."""
    run = pq.read_table(run_path).sort_by([("qid", "ascending"), ("rank", "ascending")])
    lines = [f"{q} Q0 {d} {r} {s:.6f} {tag}" for q, d, r, s in zip(
        *(run.column(c).to_pylist() for c in ("qid", "docid", "rank", "score")), strict=True)]
    write_text_atomic("\n".join(lines) + "\n", out_path)
    return len(lines)
