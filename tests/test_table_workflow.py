"""The real workflow reading `format: table` inputs: retrieval from the MTEB / HF Parquet layout with no
columns map, sentence pairs from a CSV with a header and a columns map."""

from __future__ import annotations

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
from conftest import write_tiny_beir
from test_sts_workflow import sts_config, write_tiny_stsb
from workflow_utils import planned_jobs, snakemake, tiny_retrieval_config, write_config

from bicross.data import load_dataset
from bicross.data.sts import load_pairs


def beir_as_mteb_parquet(beir, root):
    """The tiny BEIR folder in the MTEB / HF layout: corpus in 2 shards, one queries file, qrels per split."""
    docs = [json.loads(line) for line in (beir / "corpus.jsonl").read_text().splitlines()]
    queries = [json.loads(line) for line in (beir / "queries.jsonl").read_text().splitlines()]
    (root / "corpus").mkdir(parents=True)
    (root / "queries").mkdir()
    (root / "qrels").mkdir()
    half = len(docs) // 2
    for i, part in enumerate((docs[:half], docs[half:])):
        pq.write_table(pa.Table.from_pylist(part), root / "corpus" / f"corpus-0000{i}-of-00002.parquet")
    pq.write_table(pa.Table.from_pylist(queries), root / "queries" / "queries-00000-of-00001.parquet")
    for split in ("train", "test"):
        rows = list(csv.reader((beir / "qrels" / f"{split}.tsv").open(), delimiter="\t"))
        table = pa.table({"query-id": [r[0] for r in rows[1:]], "corpus-id": [r[1] for r in rows[1:]],
                          "score": pa.array([int(r[2]) for r in rows[1:]], pa.int64())})
        pq.write_table(table, root / "qrels" / f"{split}-00000-of-00001.parquet")
    return root


def test_retrieval_reads_the_mteb_parquet_layout(tmp_path, tiny_model):
    beir = write_tiny_beir(tmp_path / "beir")
    mteb = beir_as_mteb_parquet(beir, tmp_path / "mteb")
    config = tiny_retrieval_config(tiny_model, mteb, shards=1, eval_splits=["test"])
    config["dataset"] = {"format": "table", "path": str(mteb), "splits": ["train", "test"]}
    cfg = write_config(tmp_path / "config.yaml", config)
    snakemake(tmp_path, cfg)
    res = tmp_path / "results" / "tiny"
    expected = load_dataset({"format": "beir", "path": str(beir), "splits": ["train", "test"]})
    assert pq.read_table(res / "data" / "corpus.parquet").equals(expected.corpus)
    assert pq.read_table(res / "data" / "qrels" / "test.parquet").equals(expected.qrels["test"])
    metrics = pq.read_table(res / "metrics.parquet").to_pylist()
    assert {(m["iteration"], m["encoder"], m["split"]) for m in metrics} == {(0, "bi", "test")}

    # every corpus file is an input of prepare_corpus: a changed shard prepares the corpus again (the
    # dropped document is no query's positive)
    shard = mteb / "corpus" / "corpus-00001-of-00002.parquet"
    table = pq.read_table(shard)
    pq.write_table(table.slice(0, table.num_rows - 1), shard)
    assert "prepare_corpus" in planned_jobs(snakemake(tmp_path, cfg, "-n"))


def test_sts_reads_a_csv_table_with_a_columns_map(tmp_path, tiny_model):
    stsb = write_tiny_stsb(tmp_path / "stsb")
    table_dir = tmp_path / "table"
    table_dir.mkdir()
    for split in ("train", "dev", "test"):
        rows = [line.split("\t") for line in (stsb / f"sts-{split}.csv").read_text().splitlines()]
        with open(table_dir / f"{split}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "similarity", "first sentence", "second sentence"])
            writer.writerows([[r[3], r[4], r[5], r[6]] for r in rows])
    config = sts_config(tiny_model, table_dir, iterations=0, sts={"max_length": 16})
    config["dataset"] = {"format": "table", "path": str(table_dir), "splits": ["train", "dev", "test"],
                         "files": {s: [f"{s}.csv"] for s in ("train", "dev", "test")},
                         "columns": {"first sentence": "text_a", "second sentence": "text_b", "similarity": "score"}}
    snakemake(tmp_path, write_config(tmp_path / "config.yaml", config))
    res = tmp_path / "results" / "tinysts"
    expected = load_pairs({"format": "stsb", "path": str(stsb), "splits": ["test"]})["test"]
    got = pq.read_table(res / "data" / "pairs" / "test.parquet")
    for column in ("text_a", "text_b", "gold"):
        assert got[column].equals(expected[column]), column
    assert got["pair_id"].to_pylist()[0] == "test.csv:2"  # line 1 is the header
    metrics = pq.read_table(res / "metrics.parquet").to_pylist()
    assert {(m["encoder"], m["split"]) for m in metrics} >= {("bi", "test")}
