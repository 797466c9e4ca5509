"""A behaviour fingerprint to compare before and after a refactor: the metrics and the final weights'
checksums of the tiny retrieval run (2 iterations) and the tiny mutual STS run (2 iterations), fp32, on
the test suite's tiny random models and data. Prints JSON.

    python bench/fingerprint.py [REPO]     # REPO: the checkout whose tests/ and Snakefile to use (default: this one)
"""
import hashlib
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]).resolve()
sys.path.insert(0, str(REPO / "tests"))
import pyarrow.parquet as pq  # noqa: E402
from conftest import save_tiny_bi_encoder, write_tiny_beir  # noqa: E402
from test_sts_workflow import sts_config, write_tiny_stsb  # noqa: E402
from workflow_utils import snakemake, tiny_loop_config, write_config  # noqa: E402


def digest(res: Path) -> dict:
    out = {"metrics": {}, "weights": {}}
    for r in pq.read_table(res / "metrics.parquet").to_pylist():
        out["metrics"][f"{r['iteration']}/{r['encoder']}/{r.get('split')}/{r.get('metric')}"] = r.get("value")
    for f in sorted(res.glob("iter*/*/model/model.safetensors")):
        out["weights"][str(f.relative_to(res))] = hashlib.sha256(f.read_bytes()).hexdigest()[:16]
    return out


root = Path(tempfile.mkdtemp(prefix="fp-"))
model = save_tiny_bi_encoder(root / "model")
retrieval = {**tiny_loop_config(model, write_tiny_beir(root / "beir")), "validation": {"losing_teacher": "warn"}}
(root / "r").mkdir()
snakemake(root / "r", write_config(root / "r" / "config.yaml", retrieval))
model_b = save_tiny_bi_encoder(root / "model_b", seed=1)
sts = sts_config(model, write_tiny_stsb(root / "stsb"))
sts["sts"] = {"max_length": 16, "mutual": {"bi_model": str(model_b), "cross_model": str(model_b)}}
(root / "s").mkdir()
snakemake(root / "s", write_config(root / "s" / "config.yaml", sts))
print(json.dumps({"retrieval": digest(root / "r" / "results" / "tiny"),
                  "sts": digest(root / "s" / "results" / "tinysts")}, indent=1, sort_keys=True))
