# Config validation, wildcard constraints, path helpers and input functions.
import os

from snakemake.utils import validate


validate(config, "../workflow/schemas/config.schema.yaml")

RES = f"results/{config['experiment']}"
SPLITS = config["dataset"]["splits"]
EVAL_SPLITS = config["evaluate"]["splits"]
ITERATIONS = config["iterations"]
SHARDS = config["encode"]["shards"]
TRAIN_SPLIT = config["dataset"]["train_split"]
CROSS = config["cross_encoder"]
DISTILL = config["distill"]


wildcard_constraints:
    k=r"\d+",
    s=r"\d+",
    split=r"[A-Za-z0-9_.-]+",
    tok=r"[^/]+",


def _check_config():
    """What the schema cannot say: relations between keys."""
    unknown = sorted(set(EVAL_SPLITS) - set(SPLITS))
    if unknown:
        raise ValueError(f"config evaluate.splits names {unknown}, not in dataset.splits {SPLITS}")
    if ITERATIONS > 0 and TRAIN_SPLIT not in SPLITS:
        raise ValueError(f"config dataset.train_split {TRAIN_SPLIT!r} is not in dataset.splits {SPLITS}")
    mine, depth = config["mine"], config["retrieve"]["depth"]
    if mine["rank_end"] < mine["rank_start"]:
        raise ValueError(f"config mine.rank_end ({mine['rank_end']}) < mine.rank_start ({mine['rank_start']})")
    for key, value in (("mine.rank_end", mine["rank_end"]), ("cross_encoder.rerank_depth", CROSS["rerank_depth"]),
                       ("cross_encoder.teacher_depth", CROSS["teacher_depth"])):
        if ITERATIONS > 0 and value > depth:
            raise ValueError(f"config {key} ({value}) is deeper than retrieve.depth ({depth})")


_check_config()


def _slug(model):
    from bicross.models import model_slug

    return model_slug(model)


# Token files are per tokenizer: every bi-encoder of the chain shares bi-encoder 0's, every
# cross-encoder the initial cross-encoder's (the same folder when both start from one model).
TOKENIZERS = {_slug(config["bi_encoder"]["model"]): config["bi_encoder"]["model"],
              _slug(CROSS["model"]): CROSS["model"]}
TOK = _slug(config["bi_encoder"]["model"])
CROSS_TOK = _slug(CROSS["model"])


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


def prev(wildcards):
    return int(wildcards.k) - 1


def cross_init(wildcards):
    """Cross-encoder k starts from the configured model, or (init: warm) from cross-encoder k-1."""
    k = int(wildcards.k)
    return f"{RES}/iter{k - 1}/cross/model" if CROSS["init"] == "warm" and k > 1 else CROSS["model"]


def cross_init_input(wildcards):
    init = cross_init(wildcards)
    return [init] if init.startswith(RES) else []


def for_iteration(section, key, k):
    """A config value for iteration k, taking a per-iteration override list into account."""
    values = config["overrides"].get(section, {}).get(key)
    if values is None:
        return config[section][key]
    return values[min(int(k), len(values)) - 1]


def _check_overrides():
    for section, keys in config["overrides"].items():
        unknown = sorted(set(keys) - set(config[section]))
        if unknown:
            raise ValueError(f"config overrides.{section} names {unknown}, not keys of {section}")


_check_overrides()


def cross_hparams(wildcards):
    keys = ("train_group_size", "batch_size", "gradient_accumulation", "learning_rate", "warmup_ratio",
            "weight_decay", "max_length", "epochs", "max_steps", "precision", "gradient_checkpointing",
            "attention_dropout", "checkpoint_every", "log_every")
    return {"model": cross_init(wildcards), "seed": config["seed"] + int(wildcards.k),
            **{key: for_iteration("cross_encoder", key, wildcards.k) for key in keys}}


def distill_init(wildcards):
    """Bi-encoder k starts from bi-encoder k-1 (warm) or from the initial model (fresh)."""
    return bi_model(int(wildcards.k) - 1) if DISTILL["init"] == "warm" else bi_model(0)


def distill_init_input(wildcards):
    init = distill_init(wildcards)
    return [init] if init.startswith(RES) else []


def distill_hparams(wildcards):
    keys = ("group_size", "batch_size", "gradient_accumulation", "learning_rate", "warmup_ratio",
            "weight_decay", "epochs", "max_steps", "precision", "gradient_checkpointing", "attention_dropout",
            "loss", "teacher_temperature", "student_temperature", "kl_weight", "inbatch_weight",
            "checkpoint_every", "log_every")
    return {"model": distill_init(wildcards), "seed": config["seed"] + 1000 + int(wildcards.k),
            "pooling": config["bi_encoder"]["pooling"], "normalize": config["bi_encoder"]["normalize"],
            "query_max_length": config["tokenize"]["query_max_length"],
            "doc_max_length": config["tokenize"]["doc_max_length"],
            **{key: for_iteration("distill", key, wildcards.k) for key in keys}}


def shard_paths(k):
    return expand(f"{RES}/iter{k}/bi/embeddings/shard-{{s}}.parquet", s=range(SHARDS))


def metric_files():
    bi = expand(f"{RES}/iter{{k}}/metrics/bi-{{split}}.json", k=range(ITERATIONS + 1), split=EVAL_SPLITS)
    cross = expand(f"{RES}/iter{{k}}/metrics/cross-{{split}}.json", k=range(1, ITERATIONS + 1),
                   split=EVAL_SPLITS)
    return bi + cross


def all_outputs():
    return [f"{RES}/metrics.parquet", f"{RES}/report/metrics.png"]


def print_summary():
    path = f"{RES}/metrics.parquet"
    if os.path.exists(path):
        from bicross.summary import print_summary as show

        show(path)
