"""Exports to the formats other tools read: TREC run files, FlagEmbedding JSONL, and a trained model
with its card as a folder ready for a model hub."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from bicross.schemas import atomic_dir, write_text_atomic

# what sentence-transformers needs to load a folder as it is: SentenceTransformer (bi), CrossEncoder (cross)
LOADABLE = {"bi": ("config.json", "modules.json", "sentence_bert_config.json", "1_Pooling/config.json"),
            "cross": ("config.json",)}


def run_to_trec(run_path, out_path, tag: str = "bicross") -> int:
    """`qid Q0 docid rank score tag` per line, in rank order; returns the line count."""
    run = pq.read_table(run_path).sort_by([("qid", "ascending"), ("rank", "ascending")])
    lines = [f"{q} Q0 {d} {r} {s:.6f} {tag}" for q, d, r, s in zip(
        *(run.column(c).to_pylist() for c in ("qid", "docid", "rank", "score")), strict=True)]
    write_text_atomic("\n".join(lines) + "\n", out_path)
    return len(lines)


def to_flagembedding(negatives_path, queries_path, corpus_path, out_path, teacher_path=None) -> int:
    """FlagEmbedding training JSONL: `query`, `pos`, `neg` (texts) and, with teacher scores,
    `pos_scores` / `neg_scores` aligned with them. Negatives are the mined ones; with a teacher
    file, a negative the teacher did not score is left out so every text keeps its score."""
    import json

    from bicross.tokenize import document_text

    queries = dict(zip(*(pq.read_table(queries_path).column(c).to_pylist() for c in ("qid", "text")),
                       strict=True))
    corpus = pq.read_table(corpus_path)
    docs = {d: document_text(t, x) for d, t, x in zip(
        *(corpus.column(c).to_pylist() for c in ("docid", "title", "text")), strict=True)}
    scores = {}
    if teacher_path is not None:
        teacher = pq.read_table(teacher_path)
        scores = {(q, d): s for q, d, s in zip(
            *(teacher.column(c).to_pylist() for c in ("qid", "docid", "score")), strict=True)}
    lines = []
    for row in pq.read_table(negatives_path).to_pylist():
        q, pos, neg = row["qid"], row["positives"], row["negatives"]
        record = {"query": queries[q]}
        if scores:
            pos = [d for d in pos if (q, d) in scores]
            neg = [d for d in neg if (q, d) in scores]
        record["pos"] = [docs[d] for d in pos]
        record["neg"] = [docs[d] for d in neg]
        if scores:
            record["pos_scores"] = [round(float(scores[(q, d)]), 6) for d in pos]
            record["neg_scores"] = [round(float(scores[(q, d)]), 6) for d in neg]
        lines.append(json.dumps(record, ensure_ascii=False))
    write_text_atomic("\n".join(lines) + "\n", out_path)
    return len(lines)


def _num_labels(config_json: Path) -> int:
    """A transformers config's label count: saved as id2label (num_labels is derived from it)."""
    config = json.loads(config_json.read_text())
    return len(config["id2label"]) if "id2label" in config else int(config.get("num_labels", 2))


def export_model(results, iteration: int, encoder: str, out) -> Path:
    """Model `encoder` ("bi", "cross", "bi_b", "cross_b") of `iteration` under `results`
    (``results/<exp>``) copied to `out` with its model card as README.md: the card the workflow wrote
    after evaluation (``iter<k>/<encoder>/README.md``), else one made now from its training.json and
    metrics.parquet. The folder loads as it is with `SentenceTransformer(out)` / `CrossEncoder(out)`."""
    from bicross.card import CARD_FILE, card_text, model_metrics, model_place
    from bicross.errors import InputError

    results, out = Path(results), Path(out)
    source = results / f"iter{int(iteration)}" / encoder / "model"
    if not source.is_dir():
        found = sorted(p.parent.relative_to(results).as_posix() for p in results.glob("iter*/*/model") if p.is_dir())
        raise InputError(source, None, "a model folder the workflow saved", f"none; saved models: {found or 'none'}")
    place = model_place(source)
    if place is None:
        raise InputError(source, None, "an encoder named bi, cross, bi_b or cross_b", repr(encoder))
    missing = [name for name in LOADABLE[place.role] if not (source / name).is_file()]
    if place.role == "cross" and not missing and _num_labels(source / "config.json") != 1:
        missing.append("config.json with one label (a relevance logit)")
    if missing:
        raise InputError(source, None, f"the files sentence-transformers loads a {place.role}-encoder from",
                         f"missing {missing}")
    if out.exists() and any(out.iterdir()):
        raise InputError(out, None, "an empty or new folder to export into", "a folder with files in it")
    evaluated = source.parent / CARD_FILE
    if evaluated.is_file():
        card = evaluated.read_text()
    else:
        metrics_path = results / "metrics.parquet"
        metrics = model_metrics(metrics_path, place) if metrics_path.is_file() else []
        card = card_text(source, place=place, experiment=results.name, metrics=metrics)
    with atomic_dir(out) as tmp:
        shutil.copytree(source, tmp, ignore=shutil.ignore_patterns("*.checkpoints", CARD_FILE))
        (tmp / CARD_FILE).write_text(card)
    return out
