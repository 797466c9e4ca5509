# Config validation, wildcard constraints, path helpers and input functions.
import os

from snakemake.utils import validate


validate(config, "../workflow/schemas/config.schema.yaml")

RES = f"results/{config['experiment']}"
SPLITS = config["dataset"]["splits"]
EVAL_SPLITS = config["evaluate"]["splits"]
ITERATIONS = config["iterations"]
SHARDS = config["encode"]["shards"]


wildcard_constraints:
    k=r"\d+",
    s=r"\d+",
    split=r"[A-Za-z0-9_.-]+",


def _check_eval_splits():
    unknown = sorted(set(EVAL_SPLITS) - set(SPLITS))
    if unknown:
        raise ValueError(f"config evaluate.splits names {unknown}, not in dataset.splits {SPLITS}")


_check_eval_splits()


def tokenizer_name():
    """Token files are per tokenizer: every bi-encoder of the chain shares bi-encoder 0's."""
    from bicross.models import model_slug

    return model_slug(config["bi_encoder"]["model"])


TOK = tokenizer_name()


def bi_model(k):
    """Bi-encoder k: the configured model for k = 0, the one distilled in iteration k after that."""
    k = int(k)
    return config["bi_encoder"]["model"] if k == 0 else f"{RES}/iter{k}/bi/model"


def bi_model_input(wildcards):
    """Bi-encoder k's folder as an input, so a retrained model re-encodes (nothing for k = 0)."""
    return [] if int(wildcards.k) == 0 else [bi_model(wildcards.k)]


def dataset_files():
    """The raw files a dataset is read from, so an edited file re-runs prepare_data."""
    ds = config["dataset"]
    root = ds["path"]
    if ds["format"] == "beir":
        files = ["corpus.jsonl", "queries.jsonl", *(f"qrels/{s}.tsv" for s in SPLITS)]
    elif ds["format"] == "msmarco":
        files = [ds["collection"], *(ds["queries"][s] for s in SPLITS), *(ds["qrels"][s] for s in SPLITS)]
    else:
        return []
    return [os.path.join(root, f) for f in files]


def shard_paths(k):
    return expand(f"{RES}/iter{k}/bi/embeddings/shard-{{s}}.parquet", s=range(SHARDS))


def metric_files():
    files = expand(f"{RES}/iter{{k}}/metrics/bi-{{split}}.json", k=[0], split=EVAL_SPLITS)
    return files


def all_outputs():
    return [f"{RES}/metrics.parquet"]


def print_summary():
    path = f"{RES}/metrics.parquet"
    if os.path.exists(path):
        from bicross.summary import print_summary as show

        show(path)
