"""One tokenize_corpus job, start to finish in a fresh process: the stage as the workflow runs it
(`bicross.pipeline.tokenize_corpus`: the fast tokenizer's tokenizer.json through `tokenizers`, no
transformers, no torch) against the same stage with transformers' AutoTokenizer (a fast tokenizer,
batched: how it is usually done). Both write the same Parquet file (checked). Prints JSON.

    python bench/tokenize_stage.py --corpus ../shared/data/scifact/corpus.jsonl [--model M] [--max-length 256]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

STAGE = "from bicross import pipeline\npipeline.tokenize_corpus({model!r}, {corpus!r}, {max_length}, {out!r})\n"
# the same stage with its tokenizer loader swapped for transformers' AutoTokenizer
AUTO = ("from transformers import AutoTokenizer\nfrom bicross import pipeline\n"
        "from bicross.models import resolve_model_path\n"
        "pipeline.load_tokenizer = lambda name: AutoTokenizer.from_pretrained(resolve_model_path(name))\n" + STAGE)


def beir_corpus_to_parquet(jsonl: Path, out: Path) -> int:
    rows = [json.loads(line) for line in jsonl.open()]
    pq.write_table(pa.table({"docid": [r["_id"] for r in rows], "title": [r.get("title", "") for r in rows],
                             "text": [r["text"] for r in rows]}), out)
    return len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, required=True, help="a BEIR corpus.jsonl")
    ap.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.parquet"
        docs = beir_corpus_to_parquet(args.corpus, corpus)
        codes = {name: template.format(model=args.model, corpus=str(corpus), max_length=args.max_length,
                                       out=str(Path(tmp) / f"{name}.parquet"))
                 for name, template in (("bicross", STAGE), ("autotokenizer", AUTO))}
        walls = {name: [] for name in codes}
        for _ in range(args.repeat):  # alternating, so drift in the machine's load hits both alike
            for name, code in codes.items():
                start = time.perf_counter()
                subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
                walls[name].append(round(time.perf_counter() - start, 3))
        same = pq.read_table(Path(tmp) / "bicross.parquet").equals(pq.read_table(Path(tmp) / "autotokenizer.parquet"))
    medians = {name: statistics.median(w) for name, w in walls.items()}
    print(json.dumps({"model": args.model, "docs": docs, "max_length": args.max_length, "identical_output": same,
                      "wall_s": walls, "median_s": medians,
                      "speedup": round(medians["autotokenizer"] / medians["bicross"], 2),
                      "python": platform.python_version()}, indent=1))


if __name__ == "__main__":
    main()
