"""The builtin dataset (stdlib docstrings): sizes, integrity, determinism, options, errors."""

from __future__ import annotations

import textwrap

import pyarrow.compute as pc
import pytest

from bicross.data import builtin
from bicross.data.builtin import build_tables, extract_items, load_builtin
from bicross.errors import ConfigError
from bicross.schemas import CORPUS, QRELS, QUERIES

CFG = {"format": "builtin", "splits": ["train", "test"], "builtin": {"seed": 13}}


@pytest.fixture(scope="module")
def ds():
    return load_builtin(CFG)


def test_default_sizes_and_schemas(ds):
    assert ds.corpus.num_rows >= 2000
    assert set(ds.queries) == set(ds.qrels) == {"train", "test"}
    assert ds.queries["train"].num_rows == ds.qrels["train"].num_rows == 300
    assert ds.queries["test"].num_rows == ds.qrels["test"].num_rows == 100
    assert ds.corpus.schema.equals(CORPUS)
    for split in ds.queries:
        assert ds.queries[split].schema.equals(QUERIES)
        assert ds.qrels[split].schema.equals(QRELS)


def test_deterministic(ds):
    again = load_builtin(CFG)
    assert again.corpus.equals(ds.corpus)
    for split in ds.queries:
        assert again.queries[split].equals(ds.queries[split])
        assert again.qrels[split].equals(ds.qrels[split])
    # the parse itself, not only the cache, gives the same items
    assert builtin._extract_items.__wrapped__(builtin.stdlib_dir()) == extract_items()


def test_ids_texts_and_qrels(ds):
    docids = ds.corpus["docid"].to_pylist()
    assert len(set(docids)) == len(docids)
    assert all(d.startswith("doc-") for d in docids)
    assert pc.min(pc.utf8_length(pc.utf8_trim_whitespace(ds.corpus["text"]))).as_py() > 0
    known = set(docids)
    positives = {}
    for split in ("train", "test"):
        queries, qrels = ds.queries[split].to_pydict(), ds.qrels[split].to_pydict()
        assert len(set(queries["qid"])) == len(queries["qid"])
        assert all(q.startswith("q-") and t.strip() for q, t in zip(queries["qid"], queries["text"], strict=True))
        assert set(qrels["qid"]) <= set(queries["qid"])
        assert set(qrels["docid"]) <= known
        assert set(qrels["relevance"]) == {1}
        # exactly one relevant document per query, and every query has one
        assert sorted(qrels["qid"]) == sorted(queries["qid"])
        positives[split] = set(qrels["docid"])
    assert not set(ds.queries["train"]["qid"].to_pylist()) & set(ds.queries["test"]["qid"].to_pylist())
    assert not set(ds.queries["train"]["text"].to_pylist()) & set(ds.queries["test"]["text"].to_pylist())
    assert not positives["train"] & positives["test"]
    # distractors: documents no query points at
    assert len(known - positives["train"] - positives["test"]) == ds.corpus.num_rows - 400


def test_queries_are_not_restated_in_their_documents(ds):
    text = dict(zip(ds.corpus["docid"].to_pylist(), ds.corpus["text"].to_pylist(), strict=True))
    for split in ds.queries:
        query = dict(zip(ds.queries[split]["qid"].to_pylist(), ds.queries[split]["text"].to_pylist(), strict=True))
        for qid, docid in zip(ds.qrels[split]["qid"].to_pylist(), ds.qrels[split]["docid"].to_pylist(), strict=True):
            assert query[qid].lower() not in text[docid].lower()
            assert 4 <= len(query[qid].split()) <= 30
            assert len(text[docid].split()) >= 15


def test_smaller_options():
    cfg = {"format": "builtin", "builtin": {"seed": 1, "num_docs": 60, "train_queries": 20, "test_queries": 7}}
    small = load_builtin(cfg)  # no `splits`: train and test
    assert small.corpus.num_rows == 60
    assert small.queries["train"].num_rows == 20 and small.queries["test"].num_rows == 7
    assert set(small.qrels["train"]["docid"].to_pylist()) <= set(small.corpus["docid"].to_pylist())
    assert not small.corpus.equals(load_builtin({**cfg, "builtin": {**cfg["builtin"], "seed": 2}}).corpus)


def test_only_requested_splits_and_stable_test_split(ds):
    only_test = load_builtin({**CFG, "splits": ["test"]})
    assert set(only_test.queries) == set(only_test.qrels) == {"test"}
    assert only_test.queries["test"].equals(ds.queries["test"])
    more_train = build_tables(seed=13, train_queries=350)[1]
    assert more_train["test"].equals(ds.queries["test"])  # test queries do not move with train_queries


def test_the_corpus_and_each_split_apart_are_the_whole_datasets(ds):
    """prepare_corpus and prepare_split: the same tables as the whole dataset; the corpus spec has no splits."""
    from bicross.data import corpus_spec, load_corpus, load_split, split_spec

    assert corpus_spec(CFG) == {"format": "builtin", "builtin": {"seed": 13}}
    assert load_corpus(corpus_spec(CFG)).equals(ds.corpus)
    for split in ("train", "test"):
        queries, qrels = load_split(split_spec(CFG, split), split, ds.corpus["docid"])
        assert queries.equals(ds.queries[split]) and qrels.equals(ds.qrels[split])
    with pytest.raises(ConfigError, match=r"the builtin dataset has splits \['train', 'test'\], not \['dev'\]"):
        load_split(split_spec(CFG, "dev"), "dev", ds.corpus["docid"])


@pytest.mark.parametrize(
    "options, message",
    [
        ({"num_docs": 10**6}, "usable documents"),
        ({"train_queries": 10**6}, "usable queries"),
        ({"num_docs": 10, "train_queries": 10, "test_queries": 5}, "num_docs is 10"),
    ],
)
def test_asking_for_more_than_available_raises(options, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_builtin({**CFG, "builtin": options})
    if "usable" in message:
        assert "only" in str(err.value)


@pytest.mark.parametrize(
    "cfg",
    [
        {**CFG, "builtin": {"num_doc": 100}},
        {**CFG, "builtin": {"seed": "13"}},
        {**CFG, "builtin": {"train_queries": -1}},
        {**CFG, "splits": ["dev"]},
        {**CFG, "builtin": {"train_queries": 0}},
    ],
)
def test_bad_options_raise(cfg):
    with pytest.raises(ConfigError):
        load_builtin(cfg)


def _write(root, rel, source):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))


BODY = " ".join(f"word{i}" for i in range(20))


def test_extraction_rules_on_a_fake_stdlib(tmp_path):
    _write(tmp_path, "alpha.py", f'''
        raise SystemExit("imported!")  # parsed, never imported

        def good():
            """Compute the thing from the other thing.

            {BODY} good.
            """

        class Holder:
            """Hold several values at once for later.

            {BODY} holder.
            """
            def method(self):
                """Return the values that are held here.

                {BODY} method.
                """

        if True:
            def nested():
                """Return a value defined inside a condition.

                {BODY} nested.
                """

        def short_doc():
            """Compute something with a short body.

            Too short.
            """

        def signature():
            """signature(a, b) -> int

            {BODY} signature.
            """

        def grammar():
            """token = [CFWS] 1*ttext [CFWS]

            {BODY} grammar.
            """

        def restated():
            """Restate the summary in the body.

            As said: restate the summary in the body. {BODY}
            """

        def copy_a():
            """Return the shared summary text.

            {BODY} copy a.
            """

        def copy_b():
            """Return the shared summary text.

            {BODY} copy b.
            """

        def same_doc_a():
            """Summary of the first twin here.

            {BODY} twin.
            """

        def same_doc_b():
            """Summary of the second twin here.

            {BODY} twin.
            """
    ''')
    _write(tmp_path, "pkg/__init__.py", f'"""The pkg package does things.\n\n{BODY} package."""\n')
    _write(tmp_path, "test/test_x.py", f'def t():\n    """Skipped test suite helper.\n\n    {BODY}\n    """\n')
    _write(tmp_path, "pkg/tests/test_y.py", f'def t():\n    """Skipped test suite helper.\n\n    {BODY}\n    """\n')
    _write(tmp_path, "site-packages/third.py", f'def t():\n    """Skipped third party code.\n\n    {BODY}\n    """\n')
    _write(tmp_path, "broken.py", "def oops(:\n")

    items = {it.qualname: it for it in extract_items(str(tmp_path))}
    assert set(items) == {
        "alpha.good", "alpha.Holder", "alpha.Holder.method", "alpha.nested", "alpha.signature",
        "alpha.grammar", "alpha.restated", "alpha.copy_a", "alpha.copy_b", "pkg",
    }
    askable = {q for q, it in items.items() if it.query_ok}
    assert askable == {"alpha.good", "alpha.Holder", "alpha.Holder.method", "alpha.nested", "pkg"}
    good = items["alpha.good"]
    assert good.query == "Compute the thing from the other thing."
    assert good.document == f"{BODY} good."
    assert good.title == "alpha" and items["alpha.Holder.method"].title == "alpha"
    assert items["pkg"].title == ""  # a module is not titled with its own name

    corpus, queries, qrels = build_tables(seed=0, num_docs=9, train_queries=3, test_queries=2, root=str(tmp_path))
    assert corpus.num_rows == 9 and queries["train"].num_rows == 3 and queries["test"].num_rows == 2
    with pytest.raises(ConfigError, match="only 10 usable documents"):
        build_tables(num_docs=11, train_queries=1, test_queries=1, root=str(tmp_path))
    with pytest.raises(ConfigError, match="only 5 usable queries"):
        build_tables(num_docs=10, train_queries=4, test_queries=2, root=str(tmp_path))
