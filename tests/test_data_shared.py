"""The loaders on the real datasets beside the project (../shared/data); skipped where that is absent."""

from __future__ import annotations

import logging
import time

import pyarrow.parquet as pq
from conftest import shared_data as need

from bicross.data import load_dataset, write_dataset
from bicross.data.validate import queries_without_positive


def written(ds, outdir) -> dict:
    """Write with write_dataset and read the Parquet back: {relative path: table}."""
    write_dataset(ds, outdir)
    return {p.relative_to(outdir).as_posix(): pq.read_table(p) for p in sorted(outdir.rglob("*.parquet"))}


def sort(table, *keys):
    return table.sort_by([(k, "ascending") for k in keys])


def test_scifact(tmp_path):
    cfg = {"format": "beir", "path": str(need("scifact")), "splits": ["train", "test"]}
    start = time.perf_counter()
    ds = load_dataset(cfg)
    assert time.perf_counter() - start < 2.0  # 5k docs: a fraction of a second when warm
    files = written(ds, tmp_path)
    assert sorted(files) == [
        "corpus.parquet",
        "qrels/test.parquet",
        "qrels/train.parquet",
        "queries/test.parquet",
        "queries/train.parquet",
    ]
    assert files["corpus.parquet"].num_rows == 5183
    assert (files["queries/test.parquet"].num_rows, files["qrels/test.parquet"].num_rows) == (300, 339)
    assert (files["queries/train.parquet"].num_rows, files["qrels/train.parquet"].num_rows) == (809, 919)
    for split in ("train", "test"):
        assert queries_without_positive(files[f"qrels/{split}.parquet"]) == []


def test_dl19_beir_and_msmarco_forms_agree(tmp_path, caplog):
    """The DL19 subset in BEIR form and in MS MARCO form give the same Parquet content.

    What differs in the files, checked by hand:
    - BEIR queries.jsonl holds all 50 DL19 queries, topics.dl19-passage.txt only the 43 judged ones; a
      split keeps only queries with qrels, so both give the same 43.
    - qrels.dl19-passage.txt is the official file: 9,260 rows, graded 0-3. BEIR qrels/test.tsv holds
      4,102 rows, graded 1-3. The subset's corpus has every judged-relevant passage (plus 898 unjudged
      ones) and none of the judged-non-relevant, so `on_unknown_id: drop` drops exactly the 5,158
      relevance-0 rows (all naming passages outside the subset) and the rest equals the BEIR qrels row
      for row. No relevance-0 row survives on either side, so no query loses or gains a positive.
    - Passage text is identical; BEIR titles are all empty, as MS MARCO's TSV has none.
    """
    beir = load_dataset({"format": "beir", "path": str(need("msmarco-dl19-subset")), "splits": ["test"]})
    with caplog.at_level(logging.WARNING, logger="bicross.data"):
        msm = load_dataset(
            {
                "format": "msmarco",
                "path": str(need("msmarco-passage-format")),
                "splits": ["test"],
                "on_unknown_id": "drop",
                "collection": "collection.dl19-subset.tsv",
                "queries": {"test": "topics.dl19-passage.txt"},
                "qrels": {"test": "qrels.dl19-passage.txt"},
            }
        )
    assert "dropped 5158 of 9260 qrels rows" in caplog.text
    assert "unknown query (0) or document (5158)" in caplog.text

    a, b = written(beir, tmp_path / "beir"), written(msm, tmp_path / "msmarco")
    assert sorted(a) == sorted(b) == ["corpus.parquet", "qrels/test.parquet", "queries/test.parquet"]
    assert a["corpus.parquet"].num_rows == 5000
    assert sort(a["corpus.parquet"], "docid").equals(sort(b["corpus.parquet"], "docid"))
    assert a["queries/test.parquet"].num_rows == 43
    assert sort(a["queries/test.parquet"], "qid").equals(sort(b["queries/test.parquet"], "qid"))
    qa, qb = sort(a["qrels/test.parquet"], "qid", "docid"), sort(b["qrels/test.parquet"], "qid", "docid")
    assert qa.num_rows == 4102 and qa.equals(qb)
    assert set(qa["relevance"].to_pylist()) == {1, 2, 3}


def test_msmarco_dev_small_qrels_parse():
    """The official dev-small topics/qrels (`qid 0 pid rel`) parse; they come without a corpus here."""
    from bicross.data.msmarco import read_trec_qrels, read_tsv
    from bicross.schemas import QUERIES

    root = need("msmarco-passage-format")
    topics = read_tsv(root / "topics.msmarco-passage.dev-subset.txt", QUERIES, "queries")
    qrels = read_trec_qrels(root / "qrels.msmarco-passage.dev-subset.txt")
    assert topics.table.num_rows == 6980 and qrels.table.num_rows == 7437
    assert set(qrels.table["qid"].to_pylist()) <= set(topics.table["qid"].to_pylist())
