"""Model cards: the ``README.md`` of a saved model in the sentence-transformers / Hugging Face shape (YAML
front matter, then what the model is, how it was trained, what it scored, with what settings and code).

Two moments write one: the training job (`bicross.train.run`) saves a card with what it knows into the
model folder; the workflow's `model_cards` stage, after evaluation, writes the full card (plus the
metrics of every evaluated split, from metrics.parquet, and the run's config sections) BESIDE the model
folder, ``iter<k>/<role><family>/README.md``, so the model folder, an input of every later stage, is
never rewritten. `bicross export-model` puts that card into the exported folder.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from bicross.schemas import write_text_atomic
from bicross.summary import COUNTS

CARD_FILE = "README.md"
# where the workflow saves trained models: iter<k>/<role><family>/model, supervised/<role>/model
_ITERATION_MODEL = re.compile(r"iter(\d+)/(bi|cross)(_b)?/model/?$")
_SUPERVISED_MODEL = re.compile(r"supervised/(bi|cross)/model/?$")
ROLE_NAMES = {"bi": "bi-encoder", "cross": "cross-encoder"}
PRECISION = {"no": "fp32"}  # accelerate's mixed_precision names


@dataclass(frozen=True)
class ModelPlace:
    """Where a model folder sits in a workflow's results: its iteration, role, family, and the name of
    its rows in metrics.parquet (iteration, encoder)."""

    iteration: int
    role: str  # "bi" | "cross"
    family: str = ""  # "" | "_b"
    supervised: bool = False

    @property
    def encoder(self) -> str:
        return f"{self.role}-supervised" if self.supervised else f"{self.role}{self.family}"

    @property
    def label(self) -> str:
        """A legend label: "iteration 2", "iteration 2 (_b)", "supervised"."""
        if self.supervised:
            return "supervised"
        return f"iteration {self.iteration}" + (f" ({self.family})" if self.family else "")

    @property
    def title(self) -> str:
        if self.supervised:
            return f"supervised {ROLE_NAMES[self.role]} (gold labels, for comparison)"
        return f"{ROLE_NAMES[self.role]}{self.family} {self.iteration}"


def model_place(model_dir: str | os.PathLike) -> ModelPlace | None:
    """The place of a workflow model folder; None for a folder outside that layout."""
    text = Path(model_dir).as_posix()
    if match := _ITERATION_MODEL.search(text):
        return ModelPlace(int(match.group(1)), match.group(2), match.group(3) or "")
    if match := _SUPERVISED_MODEL.search(text):
        return ModelPlace(0, match.group(1), supervised=True)
    return None


def training_summary(model_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(model_dir) / "training.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def base_model(model_dir: str | os.PathLike) -> str | None:
    """The configured model a chain of warm starts began from: follow each training.json's starting
    model (or, for a copy the teacher gate kept, what it copied) back to one that bicross did not train."""
    seen = set()
    current = str(model_dir)
    while current not in seen:
        seen.add(current)
        summary = training_summary(current) if os.path.isdir(current) else {}
        if not summary:
            return None if current == str(model_dir) else current
        if summary.get("skipped"):  # the teacher gate kept a copy of the previous model
            current = summary.get("copied_from") or summary.get("gate", {}).get("student_model")
        else:
            current = summary.get("hparams", {}).get("model")
        if not current:
            return None
    return current


def hub_id(name: str | None) -> str | None:
    """`name` when it is a hub model id (the card's ``base_model`` must be one), else None."""
    from bicross.models import _HUB_ID, looks_local

    return name if name and not looks_local(name) and _HUB_ID.match(name) else None


def model_metrics(metrics_path: str | os.PathLike, place: ModelPlace) -> list[dict[str, Any]]:
    """The metrics.parquet rows of the model at `place`, by split then metric."""
    rows = [r for r in pq.read_table(metrics_path).to_pylist()
            if r["iteration"] == place.iteration and r["encoder"] == place.encoder]
    return sorted(rows, key=lambda r: (r["split"], r["metric"]))


def _front_matter(role: str, summary: dict, base: str | None, metrics: list[dict], dataset: str | None,
                  title: str) -> dict[str, Any]:
    hparams = summary.get("hparams", {})
    loss = hparams.get("loss")
    tags = (["sentence-transformers", "sentence-similarity", "feature-extraction"] if role == "bi"
            else ["sentence-transformers", "cross-encoder", "reranker"])
    tags += ["bicross", f"bicross-recipe:{summary['recipe']}"] if summary.get("recipe") else ["bicross"]
    if loss:
        tags.append(f"loss:{loss}")
    front: dict[str, Any] = {"tags": tags}
    if hub_id(base):
        front["base_model"] = base
    front["library_name"] = "sentence-transformers"
    front["pipeline_tag"] = "sentence-similarity" if role == "bi" else "text-ranking"
    metrics = [r for r in metrics if r["metric"] not in COUNTS]  # query and pair counts are no metrics
    if metrics:
        front["metrics"] = sorted({r["metric"] for r in metrics})
        task = "sentence-similarity" if role == "bi" else "text-ranking"
        results = []
        for split in sorted({r["split"] for r in metrics}):
            results.append({
                "task": {"type": task},
                "dataset": {"name": f"{dataset or 'dataset'} ({split})", "type": dataset or "dataset",
                            "split": split},
                "metrics": [{"type": r["metric"], "value": round(float(r["value"]), 6), "name": r["metric"]}
                            for r in metrics if r["split"] == split],
            })
        front["model-index"] = [{"name": title, "results": results}]
    return front


def _yaml_block(value: Any) -> str:
    return "```yaml\n" + yaml.safe_dump(value, sort_keys=False, allow_unicode=True).rstrip() + "\n```\n"


def _metrics_table(metrics: list[dict]) -> str:
    lines = ["| split | metric | value |", "|---|---|---|"]
    lines += [f"| {r['split']} | {r['metric']} | {r['value']:.0f} |" if r["metric"] in COUNTS
              else f"| {r['split']} | {r['metric']} | {r['value']:.4f} |" for r in metrics]
    return "\n".join(lines) + "\n"


def _recipe_line(recipe: str) -> str:
    """The first line of the recipe module's docstring: what it trains, with which loss."""
    from bicross.train import recipe as recipe_module

    doc = (recipe_module(recipe).__doc__ or "").strip().splitlines()
    return doc[0] if doc else recipe


def _data_lines(summary: dict, results: Path | None) -> list[str]:
    lines = []
    for signature in summary.get("inputs", []):
        path = Path(signature["path"])
        shown = path.as_posix()
        if results is not None:
            try:
                shown = path.relative_to(results.resolve()).as_posix()
            except ValueError:
                pass
        lines.append(f"- `{shown}` ({signature['size']:,} bytes)")
    counts = {k: v for k, v in summary.items() if k in ("train_queries", "train_pairs", "examples_per_epoch")}
    lines += [f"- {key.replace('_', ' ')}: {value:,}" for key, value in counts.items()]
    return lines


def card_text(model_dir: str | os.PathLike, *, place: ModelPlace | None = None, experiment: str | None = None,
              metrics: list[dict] | None = None, sections: dict[str, Any] | None = None,
              dataset: str | None = None, train_split: str | None = None) -> str:
    """The card of the model in `model_dir` (its training.json), placed at `place` of `experiment`, with
    `metrics` (metrics.parquet rows of the model) and the config `sections` it was trained under."""
    model_dir = Path(model_dir)
    summary = training_summary(model_dir)
    place = place or model_place(model_dir)
    role = place.role if place else ("bi" if (model_dir / "modules.json").is_file() else "cross")
    title = place.title if place else ROLE_NAMES[role]
    heading = f"bicross {title}" + (f" ({experiment})" if experiment else "")
    base = base_model(model_dir)
    metrics = metrics or []
    front = _front_matter(role, summary, base, metrics, dataset, heading)
    out = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---", "", f"# {heading}", ""]
    kind = "SentenceTransformer bi-encoder" if role == "bi" else "CrossEncoder (one relevance logit per pair)"
    where = f"iteration {place.iteration}" if place and not place.supervised else ""
    if experiment:
        where = f"{where} of experiment `{experiment}`" if where else f"experiment `{experiment}`"
    out += [f"A {kind} trained by bicross (a bi-encoder and a cross-encoder that teach each other in turns)"
            + (f", {where}." if where else "."), ""]
    out += ["## Model details", "", f"- **Model type:** {ROLE_NAMES[role]}"]
    out.append(f"- **Base model:** `{base}`" if base else "- **Base model:** unknown")
    start = summary.get("hparams", {}).get("model")
    if start and start != base:
        out.append(f"- **Started from:** `{start}`")
    if place and not place.supervised:
        out.append(f"- **Iteration:** {place.iteration}" + (f" (family `{place.family}`)" if place.family else ""))
    out.append("")

    out += ["## Training", ""]
    if summary.get("skipped"):
        gate = summary.get("gate", {})
        out += [f"Not trained: the teacher gate kept the previous model ({gate.get('message', 'no message')}); "
                f"this is a copy of `{summary.get('copied_from')}`.", ""]
    elif summary.get("recipe"):
        hparams = summary.get("hparams", {})
        out += [f"- **Recipe:** `{summary['recipe']}`: {_recipe_line(summary['recipe'])}"]
        if hparams.get("loss"):
            out.append(f"- **Loss:** `{hparams['loss']}`")
        if train_split:
            out.append(f"- **Training split:** `{train_split}`")
        out.append(f"- **Steps:** {summary.get('steps')} ({summary.get('examples', 0):,} examples in "
                   f"{summary.get('seconds', 0):.1f} s, {summary.get('num_processes', 1)} process(es), "
                   f"precision {PRECISION.get(summary.get('mixed_precision'), summary.get('mixed_precision'))})")
        if summary.get("learning"):
            from bicross.learning import LearningCheck

            out.append(f"- **Learning check:** {LearningCheck(**summary['learning']).message(title)}")
        out.append("- **Loss curve:** `loss.parquet` (step, loss, learning_rate) in the model folder")
        data = _data_lines(summary, model_dir.parents[2] if place else None)  # results/<exp>/...
        if data:
            out += ["", "Data:", "", *data]
        out += ["", "Hyperparameters:", "", _yaml_block(hparams)]
    else:
        out += ["No training.json: how this model was made is unknown.", ""]

    out += ["## Evaluation", ""]
    if metrics:
        out += [f"Metrics of `{place.encoder if place else role}` in metrics.parquet:", "", _metrics_table(metrics)]
    else:
        out += ["Not evaluated yet: the workflow's `model_cards` stage writes this card with the metrics "
                "beside the model folder after evaluation.", ""]

    if sections:
        out += ["## Configuration", "", "The config sections this model was trained under (this iteration's "
                "overrides applied):", "", _yaml_block(sections)]

    usage = ("from sentence_transformers import SentenceTransformer\n\nmodel = SentenceTransformer(\"PATH\")\n"
             "embeddings = model.encode([\"a query\", \"a document\"])" if role == "bi" else
             "from sentence_transformers import CrossEncoder\n\nmodel = CrossEncoder(\"PATH\")\n"
             "scores = model.predict([(\"a query\", \"a document\")])")
    out += ["## Usage", "", "```python", usage, "```", ""]
    version, commit = summary.get("bicross_version"), summary.get("bicross_commit")
    out += ["## Provenance", "", f"- **bicross version:** {version or 'unknown'}",
            f"- **bicross commit:** {commit or 'unknown'}", ""]
    return "\n".join(out)


def config_sections(config: dict[str, Any], recipe: str, k: int) -> dict[str, Any]:
    """The config sections a model of `recipe` at iteration k was trained under: the dataset and those
    its recipe reads (``SECTIONS``), with iteration k's overrides applied."""
    from bicross.runconfig import sections_at
    from bicross.train import recipe as recipe_module

    sections = sections_at(config, k)
    return {name: sections[name] for name in ("dataset", *recipe_module(recipe).SECTIONS) if name in sections}


def dataset_name(dataset: dict[str, Any]) -> str:
    """A short name of the configured dataset for the card: the builtin's name, else its folder's."""
    if dataset.get("format") == "builtin":
        return "builtin"
    return Path(dataset.get("path") or dataset.get("format", "dataset")).name or str(dataset.get("format"))


def write_training_card(model_dir: str | os.PathLike, final: str | os.PathLike | None = None) -> Path:
    """The card a training job saves into its model folder: what training.json knows (no metrics yet).
    `final`: where the folder will be (a model is saved into a temporary sibling first)."""
    place = model_place(final) if final is not None else None
    path = Path(model_dir) / CARD_FILE
    write_text_atomic(card_text(model_dir, place=place), path)
    return path


def write_cards(models: list[str], cards: list[str], metrics_path: str | os.PathLike, experiment: str,
                sections: dict[str, dict], dataset: str | None = None, train_split: str | None = None) -> None:
    """The workflow's cards after evaluation: for each model folder the card at the same position of
    `cards`, with its metrics and `sections[model folder]` (its config sections)."""
    for model_dir, card in zip(models, cards, strict=True):
        place = model_place(model_dir)
        metrics = model_metrics(metrics_path, place) if place else []
        write_text_atomic(card_text(model_dir, place=place, experiment=experiment, metrics=metrics,
                                    sections=sections.get(model_dir), dataset=dataset, train_split=train_split),
                          card)
