"""``python -m bicross.train RECIPE ...`` (under `accelerate launch`): see bicross.train."""

from __future__ import annotations

import argparse
import os
import sys

import torch

from bicross.train import RECIPES, recipe, run
from bicross.trainio import load_hparams


def build_parser(name: str) -> argparse.ArgumentParser:
    module = recipe(name)
    parser = argparse.ArgumentParser(prog=f"python -m bicross.train {name}", description=module.__doc__.split("\n")[0])
    for key, text in module.INPUTS.items():
        parser.add_argument(f"--{key}", required=True, help=text, nargs="+" if key in getattr(module, "MANY", ()) else None)
    parser.add_argument("--out", required=True, help="model directory to create")
    parser.add_argument("--checkpoints", required=True, help="checkpoint directory (resumed from if present)")
    parser.add_argument("--hparams", default=None, help="JSON object, or a JSON/YAML file, of hyperparameters: "
                        + "; ".join(f"{k}: {v}" for k, v in module.Hparams.help().items()))
    parser.add_argument("--log", default=None, help="also append the log to this file")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process")
    parser.add_argument("--stop-after-steps", type=int, default=None, help=argparse.SUPPRESS)  # tests
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in RECIPES:
        sys.exit(f"usage: python -m bicross.train {{{','.join(RECIPES)}}} --help")
    name, rest = argv[0], argv[1:]
    module = recipe(name)
    args = build_parser(name).parse_args(rest)
    if args.threads:
        torch.set_num_threads(args.threads)
    inputs = {key: getattr(args, key) for key in module.INPUTS}
    run(name, inputs, args.out, args.checkpoints, load_hparams(args.hparams), log_path=args.log,
        stop_after_steps=args.stop_after_steps)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
