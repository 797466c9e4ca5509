# Config validation, wildcard constraints, path helpers and input functions.
import os
import re
import shutil
from types import SimpleNamespace

from snakemake.utils import validate

from bicross.config_schema import check_config
from bicross.launch import keep_final_checkpoints
from bicross.models import check_models


# one short line per problem (Snakemake's validate prints the whole schema and config with it), then
# Snakemake's validate, which fills in the schema's defaults
check_config(config, os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml"))
validate(config, "../workflow/schemas/config.schema.yaml")
check_models(config)  # a missing model folder, or a hub name out of reach offline, stops the run here

RES = f"results/{config['experiment']}"
SPLITS = config["dataset"]["splits"]
EVAL_SPLITS = config["evaluate"]["splits"]
ITERATIONS = config["iterations"]
SHARDS = config["encode"]["shards"]
TRAIN_SPLIT = config["dataset"]["train_split"]
CROSS = config["cross_encoder"]
DISTILL = config["distill"]
TASK = config["task"]
STS = config["sts"]
VALIDATION = config["validation"]
HOLDOUT_SPLIT = "holdout"  # retrieval: train queries held out for validation (bicross.data.hold_out)


def _validation_split():
    """The split that judges each cross-encoder before it teaches (the teacher gate); None: no gate."""
    split = VALIDATION["split"]
    if ITERATIONS == 0 or split is None:
        return None
    if TASK == "sts":
        return STS["select_split"] if split == "auto" else split
    return ("dev" if "dev" in SPLITS else HOLDOUT_SPLIT) if split == "auto" else split


VAL_SPLIT = _validation_split()
HOLDOUT = ({"split": TRAIN_SPLIT, "name": HOLDOUT_SPLIT, "size": VALIDATION["holdout_queries"],
            "seed": config["seed"]} if TASK == "retrieval" and VAL_SPLIT == HOLDOUT_SPLIT else None)
DATA_SPLITS = [*SPLITS, HOLDOUT_SPLIT] if HOLDOUT else SPLITS  # what prepare_split writes (retrieval)
VAL_METRIC = VALIDATION["metric"] if VALIDATION["metric"] != "auto" else ("spearman" if TASK == "sts" else "ndcg@10")


def _select_split():
    """The split each encoder's best iteration is chosen on (the summary, best/); None: none. task sts:
    sts.select_split; retrieval: evaluate.select_split, auto = the validation split."""
    if TASK == "sts":
        return STS["select_split"]
    split = config["evaluate"]["select_split"]
    return VAL_SPLIT if split == "auto" else split


SELECT_SPLIT = _select_split()
SELECT_METRIC = config["evaluate"]["select_metric"] if config["evaluate"]["select_metric"] != "auto" else VAL_METRIC


def _conda_setup():
    """The env file named by every job ($BICROSS_CONDA_ENV picks cpu, gpu or a file of your own; see
    bicross.envs); under --software-deployment-method conda, jobs import bicross from src/ here."""
    from snakemake.settings.types import DeploymentMethod

    from bicross.envs import conda_env_file, put_source_on_pythonpath

    settings = workflow.deployment_settings
    if settings is not None and DeploymentMethod.CONDA in settings.deployment_method:
        put_source_on_pythonpath(workflow.basedir)
    return conda_env_file(workflow.basedir)


CONDA_ENV = _conda_setup()


SPLIT_NAME = r"[A-Za-z0-9_.-]+"


wildcard_constraints:
    k=r"\d+",
    s=r"\d+",
    split=SPLIT_NAME,
    tok=r"[^/]+",
    q=r"\d+",


def _check_config():
    """What the schema cannot say: relations between keys."""
    if TASK == "sts":
        _check_sts_config()
        return
    unknown = sorted(set(EVAL_SPLITS) - set(SPLITS))
    if unknown:
        raise ValueError(f"config evaluate.splits names {unknown}, not in dataset.splits {SPLITS}")
    if VAL_SPLIT is not None and VAL_SPLIT not in DATA_SPLITS:
        raise ValueError(f"config validation.split {VAL_SPLIT!r} is not in dataset.splits {SPLITS}")
    if VAL_SPLIT == TRAIN_SPLIT:
        raise ValueError(f"config validation.split {VAL_SPLIT!r} is the train split: it must be held out")
    if SELECT_SPLIT is not None and SELECT_SPLIT not in DATA_SPLITS:
        raise ValueError(f"config evaluate.select_split {SELECT_SPLIT!r} is not in dataset.splits {SPLITS}")
    if ITERATIONS > 0 and TRAIN_SPLIT not in SPLITS:
        raise ValueError(f"config dataset.train_split {TRAIN_SPLIT!r} is not in dataset.splits {SPLITS}")
    mine, depth = config["mine"], config["retrieve"]["depth"]
    if mine["rank_end"] < mine["rank_start"]:
        raise ValueError(f"config mine.rank_end ({mine['rank_end']}) < mine.rank_start ({mine['rank_start']})")
    if mine["filter_teacher"] != "none" and mine["max_score"] is None and mine["relative_margin"] is None:
        raise ValueError(f"config mine.filter_teacher {mine['filter_teacher']!r} needs mine.max_score or "
                         "mine.relative_margin")
    for key, value in (("mine.rank_end", mine["rank_end"]), ("cross_encoder.rerank_depth", CROSS["rerank_depth"]),
                       ("cross_encoder.teacher_depth", CROSS["teacher_depth"])):
        if ITERATIONS > 0 and value > depth:
            raise ValueError(f"config {key} ({value}) is deeper than retrieve.depth ({depth})")


def _check_sts_config():
    splits = pair_splits()
    named = {VAL_SPLIT or splits[0], SELECT_SPLIT or splits[0]}
    unknown = sorted((set(EVAL_SPLITS) | set(STS["train_splits"]) | named) - set(splits))
    if unknown:
        raise ValueError(f"config names splits {unknown} that the dataset does not have ({splits})")
    for name in (UNLABELLED, AUGMENTED):
        if name in splits:
            raise ValueError(f"{name!r} names the training pairs; rename that dataset split")
    if STS["supervised_baseline"] and TRAIN_SPLIT not in splits:
        raise ValueError(f"sts.supervised_baseline trains on dataset.train_split {TRAIN_SPLIT!r}, not in {splits}")


# task sts: the unlabelled training pairs are scored like any other split under this name
# (AUGMENTED once sts.augment adds pairs built from their sentences)
UNLABELLED = "unlabelled"
AUGMENTED = "augmented"
AUGMENT = STS.get("augment", {}) if TASK == "sts" else {}
TRAIN_PAIRS = AUGMENTED if AUGMENT.get("neighbours") or AUGMENT.get("random") else UNLABELLED


def one_of(names):
    """A wildcard constraint matching exactly these names."""
    return "|".join(re.escape(n) for n in names)


def pair_set_spec(split):
    from bicross.data.sts import pair_set_spec as spec

    return spec(config["dataset"], split)


def pair_splits():
    from bicross.data.sts import pair_splits as splits

    return splits(config["dataset"])


_check_config()
for _split in (VAL_SPLIT, SELECT_SPLIT):  # the teacher gate reads its metrics; the best iteration is chosen on it
    if _split is not None and _split not in EVAL_SPLITS:
        EVAL_SPLITS = [*EVAL_SPLITS, _split]

# task sts: the splits scored one at a time (score_split_*) and those scored together (score_pairs_*); the
# validation split is apart so that adding an evaluation set leaves the teacher gate and distillation alone
SINGLE_SPLITS = [TRAIN_PAIRS] + ([VAL_SPLIT] if VAL_SPLIT and set(EVAL_SPLITS) - {VAL_SPLIT} else [])
SCORED_SPLITS = [s for s in EVAL_SPLITS if s not in SINGLE_SPLITS]
# task sts: the splits read for their gold scores (evaluated, validated on, the supervised baseline's
# training set): prepare_pairs refuses one without labels
LABELLED_SPLITS = {*EVAL_SPLITS, *([TRAIN_SPLIT] if TASK == "sts" and STS["supervised_baseline"] else [])}


def _slug(model):
    from bicross.models import model_slug

    return model_slug(model)


# Token files are per tokenizer: every bi-encoder of the chain shares bi-encoder 0's, every
# cross-encoder the initial cross-encoder's (the same folder when both start from one model).
TOKENIZERS = {_slug(config["bi_encoder"]["model"]): config["bi_encoder"]["model"],
              _slug(CROSS["model"]): CROSS["model"]}
TOK = _slug(config["bi_encoder"]["model"])
CROSS_TOK = _slug(CROSS["model"])


# sts.mutual: a second model family ("_b": bi_b, cross_b) runs the loop beside the first; each
# direction's labels are the mean of both families' scores (Trans-Encoder's mutual distillation); the
# bi-encoders' may weigh the two cross-encoders (sts.mutual.cross_weights).
MUTUAL = STS["mutual"] if TASK == "sts" else None
FAMILIES = ["", "_b"] if MUTUAL else [""]


def teacher_weights():
    """Each family's share of the cross-encoders' scores, in the bi-encoders' labels and in the teacher
    gate alike (None: one family)."""
    from bicross.sts.labels import family_weights

    return family_weights(MUTUAL.get("cross_weights"), len(FAMILIES)) if MUTUAL else None


TEACHER_WEIGHTS = teacher_weights()


wildcard_constraints:
    fam=f"(?:{one_of(FAMILIES)})",  # may be empty (the first family), so never the bare "" of no constraint


def family(wildcards):
    """The model family of a job: its `fam` wildcard ("" or "_b")."""
    return getattr(wildcards, "fam", "")


def initial_model(kind, fam=""):
    """The configured starting model of a family: kind "bi" or "cross"."""
    if fam:
        return MUTUAL[f"{kind}_model"]
    return config["bi_encoder"]["model"] if kind == "bi" else CROSS["model"]


def bi_model(k, fam=""):
    """Bi-encoder k: the configured model for k = 0, the one distilled in iteration k after that."""
    k = int(k)
    return initial_model("bi", fam) if k == 0 else f"{RES}/iter{k}/bi{fam}/model"


def bi_model_input(wildcards):
    """Bi-encoder k's folder as an input, so a retrained model re-encodes (nothing for k = 0)."""
    fam = family(wildcards)
    return [] if int(wildcards.k) == 0 else [bi_model(wildcards.k, fam)]


def dataset_files(split=None):
    """task sts: the raw files one split (None: every split) is read from, so an edited file re-runs
    prepare_pairs."""
    from bicross.data.sts import pair_files

    return pair_files(config["dataset"], split)


def corpus_files():
    """retrieval: the raw files the corpus is read from, so an edited one re-runs prepare_corpus."""
    from bicross.data import corpus_input_files

    return corpus_input_files(config["dataset"])


def corpus_spec():
    """retrieval: what the corpus is read from (bicross.data.corpus_spec), never the splits."""
    from bicross.data import corpus_spec as spec

    return spec(config["dataset"])


def split_job(split):
    """retrieval: what prepare_split reads to write a split (bicross.data.split_job): the split's own
    source, or for the train split and the held-out split carved from it, the train split's and HOLDOUT."""
    from bicross.data import split_job as job

    return job(config["dataset"], split, HOLDOUT)


def split_files(split):
    """retrieval: the raw files of the split a split is read from, so an edited one re-runs its prepare_split."""
    from bicross.data import split_input_files

    return split_input_files(config["dataset"], split_job(split)["dataset"]["splits"][0])


def prev(wildcards):
    return int(wildcards.k) - 1


def cross_init(wildcards):
    """Cross-encoder k starts from the configured model, or (init: warm) from cross-encoder k-1."""
    fam = family(wildcards)
    k = int(wildcards.k)
    warm = for_iteration("cross_encoder", "init", k) == "warm" and k > 1
    return f"{RES}/iter{k - 1}/cross{fam}/model" if warm else initial_model("cross", fam)


def cross_init_input(wildcards):
    init = cross_init(wildcards)
    return [init] if init.startswith(RES) else []


MINE = config["mine"]
MINE_FILTER = MINE["filter_teacher"] != "none"  # denoised mining (bicross.mining.MiningFilter)


def mine_teacher(wildcards):
    """The scores that denoise iteration k's negatives: cross-encoder k-1's of bi-encoder k-1's window
    (from iteration 2 on), bi-encoder k-1's run itself, or none."""
    k = int(wildcards.k)
    if MINE["filter_teacher"] == "cross" and k >= 2:
        return {"teacher": f"{RES}/iter{k}/mine/cross-scores.parquet"}
    if MINE["filter_teacher"] == "bi":
        return {"teacher": f"{RES}/iter{k - 1}/bi/run/{TRAIN_SPLIT}.parquet"}
    return {}


def mine_filter_params():
    """The filter's settings as params (none at all without a filter, so existing runs stay up to date)."""
    keys = ("filter_teacher", "max_score", "relative_margin")
    return {"denoise": {key: MINE[key] for key in keys}} if MINE_FILTER else {}


def mine_filter_output():
    return {"filter": f"{RES}/iter{{k}}/mine/filter.json"} if MINE_FILTER else {}


def for_iteration(section, key, k):
    from bicross.runconfig import for_iteration as value

    return value(config, section, key, k)


# the keys that take a value per iteration (overrides:): what the training recipes read, each trained
# model's init, and the share of a bi-encoder's own scores in its labels (sts)
PER_ITERATION = {("cross_encoder", "init"), ("distill", "init"), ("sts", "bi_self_weight")}


def _check_overrides():
    from bicross.runconfig import check_overrides
    from bicross.train import trained_keys

    check_overrides(config, PER_ITERATION | trained_keys(config, TASK))


_check_overrides()


def recipe(role):
    """The training recipe of a role ("cross" or "bi") in this task (bicross.train)."""
    from bicross.train import recipe_for

    return recipe_for(TASK, role)


def train_hparams(role, wildcards, model):
    """A training job's hyperparameters: the recipe's config sections at iteration k (bicross.train)."""
    from bicross.train import hparams_for

    return hparams_for(config, recipe(role), int(wildcards.k), model=model, family=family(wildcards))


def cross_hparams(wildcards):
    return train_hparams("cross", wildcards, cross_init(wildcards))


def distill_init(wildcards):
    """Bi-encoder k starts from bi-encoder k-1 (warm) or from the initial model (fresh)."""
    fam = family(wildcards)
    k = int(wildcards.k)
    return bi_model(k - 1, fam) if for_iteration("distill", "init", k) == "warm" else bi_model(0, fam)


def distill_init_input(wildcards):
    init = distill_init(wildcards)
    return [init] if init.startswith(RES) else []


def bi_self_weight(wildcards):
    return float(for_iteration("sts", "bi_self_weight", wildcards.k)) if TASK == "sts" else 0.0


def distill_hparams(wildcards):
    return train_hparams("bi", wildcards, distill_init(wildcards))


def gate_file(wildcards):
    """The teacher gate's decision that bi-encoder k's distillation follows (none without validation)."""
    fam = family(wildcards)
    return {"gate": f"{RES}/iter{wildcards.k}/gate/bi{fam}.json"} if VAL_SPLIT else {}


def gate_inputs(wildcards):
    """The validation scores of the teacher (cross-encoder k; every family's with sts.mutual, as the
    labels average them) and of the student, bi-encoder k-1."""
    fam, k = wildcards.student[len("bi"):], int(wildcards.k)
    if TASK == "sts":
        return {"teacher": [f"{RES}/iter{k}/cross{f}/scores/{VAL_SPLIT}.parquet" for f in FAMILIES],
                "student": f"{RES}/iter{k - 1}/bi{fam}/scores/{VAL_SPLIT}.parquet",
                "pairs": f"{RES}/data/pairs/{VAL_SPLIT}.parquet"}
    return {"teacher": [f"{RES}/iter{k}/metrics/cross-{VAL_SPLIT}.json"],
            "student": f"{RES}/iter{k - 1}/metrics/bi-{VAL_SPLIT}.json"}


def gate_files():
    return expand(f"{RES}/iter{{k}}/gate/bi{{f}}.json", k=range(1, ITERATIONS + 1), f=FAMILIES) if VAL_SPLIT else []


def cross_train_inputs(wildcards):
    """retrieval: mined groups and tokens; sts: the unlabelled pairs and the scores of them by bi-encoder
    k-1 (by each family's bi-encoder k-1 with sts.mutual: the trainer averages them)."""
    init = {"init": cross_init_input(wildcards)}
    if TASK == "sts":
        return {"pairs": f"{RES}/data/pairs/{TRAIN_PAIRS}.parquet",
                "labels": [f"{RES}/iter{prev(wildcards)}/bi{f}/scores/{TRAIN_PAIRS}.parquet" for f in FAMILIES],
                **init}
    return {"negatives": f"{RES}/iter{wildcards.k}/negatives.parquet",
            "queries": f"{RES}/tokens/{CROSS_TOK}/queries/{TRAIN_SPLIT}.parquet",
            "corpus": f"{RES}/tokens/{CROSS_TOK}/corpus.parquet", **init}


def distill_inputs(wildcards):
    """retrieval: teacher scores, qrels and tokens; sts: the unlabelled pairs and cross-encoder k's scores
    (each family's, averaged, with sts.mutual)."""
    fam = family(wildcards)
    init = {"init": distill_init_input(wildcards), **gate_file(wildcards)}
    if TASK == "sts":
        labels = [f"{RES}/iter{wildcards.k}/cross{f}/scores/{TRAIN_PAIRS}.parquet" for f in FAMILIES]
        if bi_self_weight(wildcards):  # and the bi-encoder's own scores (bi-encoder k-1 of its family)
            labels.append(f"{RES}/iter{prev(wildcards)}/bi{fam}/scores/{TRAIN_PAIRS}.parquet")
        return {"pairs": f"{RES}/data/pairs/{TRAIN_PAIRS}.parquet", "labels": labels, **init}
    return {"teacher": f"{RES}/iter{wildcards.k}/cross/teacher.parquet",
            "qrels": f"{RES}/data/qrels/{TRAIN_SPLIT}.parquet",
            "queries": f"{RES}/tokens/{TOK}/queries/{TRAIN_SPLIT}.parquet",
            "corpus": f"{RES}/tokens/{TOK}/corpus.parquet", **init}


# Stages that run in parts (bicross.parts): each part one job with its own `gpu` resource, merged by
# merge_parts into the stage's output, equal to the one-job output.
QUERY_PARTS = config["retrieve"]["query_shards"]  # retrieve: queries of a split per job
CROSS_PARTS = CROSS["score_shards"]  # rerank, score_teacher, score_mining_candidates: pairs, by query
PAIR_PARTS = STS["score_shards"]  # task sts: each scoring job's pairs, by row
_PARTED = {}  # output pattern -> parts, filled in as the rules name their outputs with parted()


def parted(path, parts):
    """A stage's output: `path` itself when it runs as one job; else part {q} of `parts`, a temporary
    file in parts/<name>/ beside it, which merge_parts puts together at `path`."""
    if parts == 1:
        return path
    _PARTED[path] = parts
    folder, name = os.path.split(path)
    return temp(f"{folder}/parts/{name.removesuffix('.parquet')}/{{q}}.parquet")


def part_log(path, parts):
    """A stage's log or benchmark file, per part when it runs in parts."""
    stem, ext = os.path.splitext(path)
    return path if parts == 1 else f"{stem}-part{{q}}{ext}"


def part_of(wildcards):
    """The part (0, 1, ...) a job computes: its `q` wildcard; 0 for a stage that runs as one job."""
    return int(getattr(wildcards, "q", 0))


def _pattern_regex(pattern):
    """A regex matching the paths of an output pattern, its wildcards as constrained here."""
    constraints = {"k": r"\d+", "split": SPLIT_NAME, "fam": f"(?:{one_of(FAMILIES)})",
                   "one": f"(?:{one_of(SINGLE_SPLITS)})"}
    pieces = re.split(r"\{(\w+)\}", pattern)
    return "".join(re.escape(piece) if i % 2 == 0 else constraints[piece] for i, piece in enumerate(pieces))


def merged_outputs():
    """merge_parts' `merged` wildcard: the parted outputs under RES, without .parquet (none: nothing)."""
    stems = [_pattern_regex(p.removeprefix(f"{RES}/").removesuffix(".parquet")) for p in _PARTED]
    return "|".join(f"(?:{s})" for s in stems) or "(?!)"


def merge_inputs(wildcards):
    """The part files of the parted output results/<exp>/<merged>.parquet, in order."""
    path = f"{RES}/{wildcards.merged}.parquet"
    parts = next(n for pattern, n in _PARTED.items()
                 if re.fullmatch(_pattern_regex(pattern.removesuffix(".parquet")), path.removesuffix(".parquet")))
    folder, name = os.path.split(wildcards.merged)
    return [f"{RES}/{folder}/parts/{name}/{q}.parquet" for q in range(parts)]


def shard_paths(k):
    return expand(f"{RES}/iter{k}/bi/embeddings/shard-{{s}}.parquet", s=range(SHARDS))


def _index_settings():
    from bicross.index import IndexSettings

    return IndexSettings.from_config(config["retrieve"])


# retrieve.index: flat searches the embeddings exactly; ivf/hnsw build one index per shard (build_index)
INDEX = _index_settings()


def index_paths(k):
    """Bi-encoder k's saved per-shard indexes (none for flat: that index is built in memory)."""
    if not INDEX.approximate:
        return []
    return expand(f"{RES}/iter{k}/bi/index/{INDEX.index}/shard-{{s}}.faiss", s=range(SHARDS))


def metric_files():
    bi = expand(f"{RES}/iter{{k}}/metrics/bi{{f}}-{{split}}.json", k=range(ITERATIONS + 1), f=FAMILIES,
                split=EVAL_SPLITS)
    cross = expand(f"{RES}/iter{{k}}/metrics/cross{{f}}-{{split}}.json", k=range(1, ITERATIONS + 1), f=FAMILIES,
                   split=EVAL_SPLITS)
    supervised = (expand(f"{RES}/supervised/metrics/cross-{{split}}.json", split=EVAL_SPLITS)
                  if TASK == "sts" and STS["supervised_baseline"] else [])
    return bi + cross + supervised


def values_files():
    """The per-query (sts: per-pair) values beside each metrics JSON (bicross.evaluate.values_path)."""
    from bicross.evaluate import values_path

    return [values_path(path) for path in metric_files()]


def best_models():
    """Every model the best/ folder may name: encoder -> the model of iteration 0, 1, ... (None: none)."""
    models = {}
    for fam in FAMILIES:
        models[f"bi{fam}"] = [bi_model(k, fam) for k in range(ITERATIONS + 1)]
        models[f"cross{fam}"] = [None, *(f"{RES}/iter{k}/cross{fam}/model" for k in range(1, ITERATIONS + 1))]
    return models


def best_outputs():
    """results/<exp>/best/: the chosen model of each encoder on SELECT_SPLIT (none without one)."""
    return [f"{RES}/best"] if SELECT_SPLIT else []


def _trained():
    """(model folder, role, the iteration whose settings trained it) of every training job; bi-encoder 0
    is the configured model, not trained."""
    found = [(f"{RES}/iter{k}/{role}{f}/model", role, k) for k in range(1, ITERATIONS + 1)
             for role in ("cross", "bi") for f in FAMILIES]
    if TASK == "sts" and STS["supervised_baseline"]:
        found.append((f"{RES}/supervised/cross/model", "cross", 1))  # train_cross_supervised: iteration 1's
    return found


def trained_models():
    return [model for model, _, _ in _trained()]


def trained_kinds():
    """The training kinds (recipes) of this run's trained models, each with its loss-curve plot."""
    roles = {role for _, role, _ in _trained()}
    return [recipe(role) for role in ("cross", "bi") if role in roles]


def loss_curve_files():
    return [f"{RES}/report/loss-{kind}.png" for kind in trained_kinds()]


def model_card_files():
    """The card written after evaluation beside each trained model folder: iter<k>/<role><fam>/README.md."""
    return [f"{os.path.dirname(model)}/README.md" for model in trained_models()]


def model_card_sections():
    """Each trained model's config sections (bicross.card.config_sections), for its card."""
    from bicross.card import config_sections

    return {model: config_sections(config, recipe(role), k) for model, role, k in _trained()}


def all_outputs():
    # the HTML tables by name: a run finished before they existed makes them (Snakemake reruns a job for
    # a missing output only when something asks for that output)
    return [f"{RES}/metrics.parquet", f"{RES}/report/metrics.png", f"{RES}/report/metrics.html",
            f"{RES}/report/runtimes.html", *gate_files(), *loss_curve_files(), *model_card_files(),
            *best_outputs()]


def print_summary():
    path = f"{RES}/metrics.parquet"
    if os.path.exists(path):
        from bicross.summary import print_summary as show

        transductive = TASK == "sts" and bool(set(STS["train_splits"]) & set(EVAL_SPLITS))
        show(path, select_split=SELECT_SPLIT, select_metric=SELECT_METRIC, transductive=transductive, results=RES,
             loss_curves=[p for p in loss_curve_files() if os.path.exists(p)])


def forget_failed_jobs():
    """onerror: drop what Snakemake recorded of this run's jobs that failed or were stopped.

    Snakemake 9 records a failed job's inputs, parameters and code as if it had run, then deletes its
    outputs; and it rebuilds a missing intermediate output only when a job after it has to run. With
    that record nothing has to: after a failed data stage (a broken line in corpus.jsonl, say) the next
    run would say "Nothing to be done" and present the old metrics as current. Without it, the next run
    runs the job again, which fails again until its input is fixed."""
    for job in workflow.dag.needrun_jobs():  # not finished: failed, stopped, or never started
        for path in job.output:
            if not os.path.exists(path):
                workflow.persistence.cleanup_metadata(path)


# A training job keeps its final checkpoint until Snakemake has recorded its model: a Snakemake
# interrupted while the job ran records no model and deletes it to run the job again; the rerun then
# resumes from that checkpoint and trains nothing. release_checkpoints removes it once recorded.
keep_final_checkpoints()


def release_checkpoints():
    """onsuccess / onerror: remove the checkpoints of the models Snakemake has recorded: those this run
    finished, and any an earlier, interrupted run left beside a model that is up to date."""
    dag = workflow.dag
    for job in dag.jobs:
        if dag.needrun(job) and not dag.finished(job):
            continue  # failed, stopped or never started: its checkpoints are what its rerun resumes from
        for path in job.output:
            if os.path.isdir(f"{path}.checkpoints"):
                shutil.rmtree(f"{path}.checkpoints")
