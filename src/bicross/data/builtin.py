"""The embedded default dataset (`dataset.format: builtin`): docstrings of the installed Python stdlib.

Offline and deterministic: it needs nothing but the standard library's own source files. Every
function, class, method (and module) docstring is split into its summary (the first paragraph) and
the rest; the summary becomes a QUERY and the rest its only relevant DOCUMENT:

    query:    "Escape and quote an attribute value."
    document: "Escape &, <, and > in a string of data, then quote it for use as an attribute value. ..."
    title:    "xml.sax.saxutils"  (the module the docstring is in; never the object's own name)

The title is the module, not the qualified name: the function name would make many queries trivial
(or arbitrary), the module is the kind of context a real page title gives. Module docstrings whose
own title would be their answer get their package (or "") as title instead.

Sources are read by PARSING the files with `ast`, never by importing them (importing stdlib modules
has side effects: `antigravity` opens a web browser). Files are walked in sorted order under
`sysconfig.get_paths()["stdlib"]`, skipping test suites (`test/`, `tests/`, `idlelib/idle_test`),
`site-packages` and anything that does not parse.

Filters (see `extract_items`): the summary must read like a sentence (4-30 words, starting with a
letter, no code such as `>>>` or a `name(args) -> result` signature); the document must have at
least 15 words once whitespace is normalised and must not restate the summary verbatim. Texts that
occur twice (inherited or copied docstrings; compared case- and punctuation-insensitively) are
ambiguous: a repeated document is dropped everywhere, a repeated summary is never used as a query
(its documents may stay as distractors). So every query has exactly one relevant document
(relevance 1), and documents no chosen query points at are distractors.

Choice of queries and corpus: a `random.Random(seed)` over lists sorted by id. The test queries are
drawn first, then the train queries, then the corpus is filled up with distractors.

Ids hash the text: `doc-<sha1(document)[:16]>`, `q-<sha1(query)[:16]>`; so the same docstring keeps
its id wherever it appears.

Docstrings differ between Python versions (3.12 dropped distutils, 3.13 lib2to3 and the "dead
batteries"), so the data -- and every number measured on it -- depends on the Python version it
came from; it is logged. The same Python install and options give byte-identical tables.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import logging
import os
import random
import re
import sys
import sysconfig
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import pyarrow as pa

from bicross.errors import ConfigError
from bicross.schemas import CORPUS, QRELS, QUERIES

if TYPE_CHECKING:
    from bicross.data import Dataset

log = logging.getLogger("bicross.data")

SPLITS = ("train", "test")
DEFAULTS = {"seed": 13, "num_docs": 2000, "train_queries": 300, "test_queries": 100}

SKIP_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"})
MIN_QUERY_WORDS, MAX_QUERY_WORDS = 4, 30
MIN_DOC_WORDS = 15

_PARAGRAPH = re.compile(r"\n[ \t]*\n")
_SIGNATURE = re.compile(r"^[\w.]+\(.*\)\s*(->|$)")  # "name(args) -> result" or a bare "name(args)"
_NON_WORD = re.compile(r"[\W_]+")
# A prose token: a word (may carry digits, dots, hyphens: "IPv6", "idle.html") or a number, in optional
# quotes/brackets/punctuation. A summary needs >= 70% of these; grammar rules ("token = [CFWS] 1*ttext
# [CFWS]"), usage lines ("l(ist) [first [,last] | .]") and argument lists fall below.
_PROSE_TOKEN = re.compile(r"[(\"'`]*(?:[A-Za-z][\w'./-]*|\d+)[)\"'`.,;:!?]*")
MIN_PROSE_FRACTION = 0.7
# The fields of a statement that hold statements (if/for/while/with/try/match bodies, except handlers).
_BLOCK_FIELDS = ("body", "orelse", "finalbody", "handlers", "cases")


@dataclass(frozen=True)
class Item:
    """One docstring, split: `query` (the summary) and `document` (the rest), whitespace-normalised."""

    qualname: str  # module.Class.method (or the module itself)
    title: str
    query: str
    document: str
    query_ok: bool  # usable as a query; if not, the document can only be a distractor
    docid: str = field(init=False)
    qid: str = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "docid", "doc-" + _sha1(self.document))
        object.__setattr__(self, "qid", "q-" + _sha1(self.query))


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def _key(text: str) -> str:
    """Case- and punctuation-insensitive form, to catch near-identical copies."""
    return _NON_WORD.sub(" ", text.lower()).strip()


def stdlib_dir() -> str:
    return sysconfig.get_paths()["stdlib"]


def _source_files(root: str) -> list[tuple[str, str]]:
    """(module name, path) of every .py file under root outside test suites, in sorted order."""
    found = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            parts = os.path.relpath(path, root)[: -len(".py")].split(os.sep)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if parts and all(p.isidentifier() for p in parts):
                found.append((".".join(parts), path))
    found.sort()
    return found


def _docstrings(tree: ast.Module, module: str):
    """(qualified name, is_module, docstring) of the module and every def/class in it, in source order.

    Only statement lists are walked (a def can only sit in one): walking every expression node too
    would take twice as long as parsing.
    """
    doc = ast.get_docstring(tree)
    if doc:
        yield module, True, doc
    stack = [(tree, module)]
    while stack:
        node, prefix = stack.pop()
        children = []
        for block in _BLOCK_FIELDS:
            for child in getattr(node, block, ()):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    qualname = f"{prefix}.{child.name}"
                    doc = ast.get_docstring(child)
                    if doc:
                        yield qualname, False, doc
                    children.append((child, qualname))
                else:
                    children.append((child, prefix))  # defs under if/try/with keep the enclosing name
        stack.extend(reversed(children))


def _is_sentence(summary: str) -> bool:
    words = summary.split()
    return (
        MIN_QUERY_WORDS <= len(words) <= MAX_QUERY_WORDS
        and summary[0].isalpha()
        and ">>>" not in summary
        and not _SIGNATURE.match(summary)
        and sum(bool(_PROSE_TOKEN.fullmatch(w)) for w in words) >= MIN_PROSE_FRACTION * len(words)
    )


def _split(doc: str) -> tuple[str, str]:
    parts = _PARAGRAPH.split(doc.strip(), maxsplit=1)
    summary = " ".join(parts[0].split())
    rest = " ".join(parts[1].split()) if len(parts) > 1 else ""
    return summary, rest


def extract_items(root: str | None = None) -> tuple[Item, ...]:
    """Every usable docstring under `root` (default: this interpreter's stdlib), deduplicated, by docid.

    Cached per directory: parsing the stdlib takes a few seconds.
    """
    return _extract_items(os.path.abspath(root or stdlib_dir()))


@functools.lru_cache(maxsize=4)
def _extract_items(root: str) -> tuple[Item, ...]:
    raw: list[Item] = []
    for module, path in _source_files(root):
        try:
            with open(path, "rb") as f:
                source = f.read()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. SyntaxWarning for an invalid escape sequence
                tree = ast.parse(source, filename=path)
        except (SyntaxError, ValueError, UnicodeDecodeError, OSError, RecursionError, MemoryError):
            continue  # unparsable (e.g. a file written for another Python version): skipped
        for qualname, is_module, doc in _docstrings(tree, module):
            summary, rest = _split(doc)
            if not summary or len(rest.split()) < MIN_DOC_WORDS:
                continue
            # A module's own name would answer its query ("The json module ..."): its package instead.
            title = module.rpartition(".")[0] if is_module else module
            # A document that restates its summary verbatim makes a trivial query: distractor only.
            query_ok = _is_sentence(summary) and f" {_key(summary)} " not in f" {_key(rest)} "
            raw.append(Item(qualname, title, summary, rest, query_ok))

    # Copies (inherited, re-exported or pasted docstrings) are ambiguous: a repeated document goes
    # entirely, a repeated summary stays out of the queries (its documents remain as distractors).
    doc_count = Counter(_key(it.document) for it in raw)
    query_count = Counter(_key(it.query) for it in raw)
    items = [
        replace(it, query_ok=False) if it.query_ok and query_count[_key(it.query)] > 1 else it
        for it in raw
        if doc_count[_key(it.document)] == 1
    ]
    askable = [it for it in items if it.query_ok]
    if len({it.docid for it in items}) != len(items) or len({it.qid for it in askable}) != len(askable):
        raise RuntimeError(f"builtin dataset: a sha1 prefix collision between two docstrings under {root}")
    items.sort(key=lambda it: it.docid)
    return tuple(items)


def _options(cfg: dict) -> dict:
    opts = cfg.get("builtin") or {}
    if not isinstance(opts, dict):
        raise ConfigError(f"dataset.builtin must be a mapping of options, got {opts!r}")
    unknown = sorted(set(opts) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"dataset.builtin: unknown option(s) {unknown}; known: {sorted(DEFAULTS)}")
    out = {**DEFAULTS, **opts}
    for name, value in out.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"dataset.builtin.{name} must be an integer, got {value!r}")
        least = {"seed": value, "num_docs": 1}.get(name, 0)  # any seed; at least one document
        if value < least:
            raise ConfigError(f"dataset.builtin.{name} must be at least {least}, got {value}")
    return out


def build_tables(
    seed: int = DEFAULTS["seed"],
    num_docs: int = DEFAULTS["num_docs"],
    train_queries: int = DEFAULTS["train_queries"],
    test_queries: int = DEFAULTS["test_queries"],
    root: str | None = None,
) -> tuple[pa.Table, dict[str, pa.Table], dict[str, pa.Table]]:
    """corpus, {split: queries}, {split: qrels} for splits train and test (see the module docstring).

    `root` replaces the stdlib directory (tests use a small fake one).
    """
    items = extract_items(root)
    askable = [it for it in items if it.query_ok]
    n_queries = train_queries + test_queries
    where = f"the docstrings under {root or stdlib_dir()} (Python {python_version()})"
    if num_docs > len(items):
        raise ConfigError(
            f"dataset.builtin.num_docs is {num_docs}, but {where} give only {len(items)} usable documents"
        )
    if n_queries > len(askable):
        raise ConfigError(
            f"dataset.builtin asks for {train_queries} train + {test_queries} test queries, but {where} "
            f"give only {len(askable)} usable queries"
        )
    if n_queries > num_docs:
        raise ConfigError(
            f"dataset.builtin: {train_queries} train + {test_queries} test queries need at least "
            f"{n_queries} documents, but num_docs is {num_docs}"
        )

    rng = random.Random(seed)
    chosen = rng.sample(askable, n_queries)  # test first: its queries stay put when train_queries changes
    by_split = {"train": chosen[test_queries:], "test": chosen[:test_queries]}
    used = {it.docid for it in chosen}
    distractors = rng.sample([it for it in items if it.docid not in used], num_docs - n_queries)
    corpus_items = sorted(chosen + distractors, key=_order)

    corpus = pa.table(
        {
            "docid": [it.docid for it in corpus_items],
            "title": [it.title for it in corpus_items],
            "text": [it.document for it in corpus_items],
        },
        schema=CORPUS,
    )
    queries, qrels = {}, {}
    for split in SPLITS:
        split_items = sorted(by_split[split], key=_order)
        queries[split] = pa.table(
            {"qid": [it.qid for it in split_items], "text": [it.query for it in split_items]}, schema=QUERIES
        )
        qrels[split] = pa.table(
            {
                "qid": [it.qid for it in split_items],
                "docid": [it.docid for it in split_items],
                "relevance": pa.array([1] * len(split_items), pa.int32()),
            },
            schema=QRELS,
        )
    return corpus, queries, qrels


def _order(it: Item) -> tuple[str, str]:
    return it.qualname, it.docid  # source order by module; docid breaks ties between same-named defs


def python_version() -> str:
    return ".".join(map(str, sys.version_info[:3]))


def _split_names(cfg: dict) -> list[str]:
    """The configured splits (train and test when none), each one the builtin dataset has and asks
    queries for; raises ConfigError naming the others."""
    from bicross.data import splits_of

    opts = _options(cfg)
    splits = list(SPLITS) if cfg.get("splits") is None else splits_of(cfg)
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ConfigError(f"dataset.splits: the builtin dataset has splits {list(SPLITS)}, not {unknown}")
    empty = [s for s in splits if opts[f"{s}_queries"] == 0]
    if empty:
        raise ConfigError(f"dataset.splits names {empty}, but dataset.builtin.{empty[0]}_queries is 0")
    return splits


SOURCE_NAME = "<builtin: Python {} stdlib docstrings>"


def _tables(cfg: dict, cache: dict | None):
    """build_tables for the config's options, once per `cache` (the whole dataset: it is small)."""
    cache = {} if cache is None else cache
    if "tables" not in cache:
        cache["tables"] = build_tables(**_options(cfg))
    return cache["tables"]


def corpus_source(cfg: dict, cache: dict | None = None):
    from bicross.data.validate import Source

    return Source(_tables(cfg, cache)[0], SOURCE_NAME.format(python_version()))


def split_sources(cfg: dict, split: str, cache: dict | None = None):
    """One split's (queries, qrels) sources; the whole dataset is built in memory (it is small)."""
    from bicross.data.validate import Source

    _split_names({**cfg, "splits": [split]})
    _, queries, qrels = _tables(cfg, cache)
    name = SOURCE_NAME.format(python_version())
    return Source(queries[split], name), Source(qrels[split], name)


def load_builtin(cfg: dict) -> Dataset:
    """The builtin Dataset for the `dataset:` config section (options under `builtin:`, see DEFAULTS).

    Splits: train and test, or those of `cfg["splits"]` when given. Raises ConfigError for options
    that cannot work, e.g. more documents or queries than the installed stdlib yields.
    """
    from bicross.data.validate import build_dataset

    opts = _options(cfg)
    splits = _split_names(cfg)
    start = time.perf_counter()
    cache: dict = {}
    corpus = corpus_source(cfg, cache)
    sources = {s: split_sources(cfg, s, cache) for s in splits}
    ds = build_dataset(corpus, {s: q for s, (q, _) in sources.items()}, {s: r for s, (_, r) in sources.items()})
    items = extract_items()
    log.info(
        "builtin dataset from the docstrings of Python %s (%s; %d usable docstrings, %d usable as queries): "
        "%d documents, %s; seed %d, %.1f s",
        python_version(), stdlib_dir(), len(items), sum(it.query_ok for it in items), ds.corpus.num_rows,
        ", ".join(f"{s}: {ds.queries[s].num_rows} queries / {ds.qrels[s].num_rows} qrels" for s in splits),
        opts["seed"], time.perf_counter() - start,
    )
    return ds
