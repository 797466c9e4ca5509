"""Loss tables and model cards on files the tests write: step order, a model's place in the results,
the base model behind a chain of warm starts, the card's front matter, export checks."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
import yaml

from bicross.card import base_model, card_text, model_place
from bicross.errors import InputError
from bicross.losscurve import loss_table, read_loss_table
from bicross.schemas import METRICS, write_table


def test_loss_table_keeps_a_missing_rate_as_null(tmp_path):
    """A run resumed from a checkpoint written before rates were kept has none for its first steps."""
    table = loss_table([(1, 2.0), (2, 1.5), (3, 1.2)], [(2, 1e-3), (3, 5e-4)])
    assert table.to_pydict() == {"step": [1, 2, 3], "loss": [2.0, 1.5, 1.2], "learning_rate": [None, 1e-3, 5e-4]}


@pytest.mark.parametrize("steps,row", [([1, 2, 2], 3), ([1, 3, 2], 3), ([2, 1], 2)])
def test_a_loss_table_whose_steps_repeat_or_go_back_is_refused(tmp_path, steps, row):
    path = tmp_path / "loss.parquet"
    write_table(pa.table({"step": steps, "loss": [1.0] * len(steps), "learning_rate": [0.1] * len(steps)}), path)
    with pytest.raises(InputError) as err:
        read_loss_table(path)
    assert err.value.path == str(path) and err.value.line == row and "strictly increasing" in str(err.value)


def test_a_loss_table_without_a_column_names_it(tmp_path):
    path = tmp_path / "loss.parquet"
    write_table(pa.table({"step": [1], "loss": [1.0]}), path)
    with pytest.raises(InputError, match="no column 'learning_rate'"):
        read_loss_table(path)


@pytest.mark.parametrize("path,expected", [
    ("results/x/iter2/bi/model", (2, "bi", "", False, "bi", "iteration 2")),
    ("results/x/iter10/cross_b/model/", (10, "cross", "_b", False, "cross_b", "iteration 10 (_b)")),
    ("results/x/supervised/cross/model", (0, "cross", "", True, "cross-supervised", "supervised")),
])
def test_model_place_from_the_results_layout(path, expected):
    place = model_place(path)
    assert (place.iteration, place.role, place.family, place.supervised, place.encoder, place.label) == expected


def test_a_folder_outside_the_layout_has_no_place():
    assert model_place("some/where/my-model") is None


def _trained(folder, start, **extra):
    folder.mkdir(parents=True)
    (folder / "training.json").write_text(json.dumps({"recipe": "cross", "hparams": {"model": str(start)}, **extra}))
    (folder / "config.json").write_text("{}")
    return folder


def test_the_base_model_is_where_the_chain_of_warm_starts_began(tmp_path):
    """cross-encoder 2 started from cross-encoder 1 (init: warm), which started from a hub model; a copy
    the teacher gate kept leads back through what it copied."""
    hub = "sentence-transformers/all-MiniLM-L6-v2"
    one = _trained(tmp_path / "results" / "x" / "iter1" / "cross" / "model", hub)
    two = _trained(tmp_path / "results" / "x" / "iter2" / "cross" / "model", one)
    assert base_model(two) == hub
    copy = tmp_path / "results" / "x" / "iter3" / "cross" / "model"
    copy.mkdir(parents=True)
    (copy / "training.json").write_text(json.dumps({"skipped": True, "copied_from": str(two)}))
    assert base_model(copy) == hub
    front = yaml.safe_load(card_text(two).split("---\n")[1])
    assert front["base_model"] == hub and front["pipeline_tag"] == "text-ranking"


def test_the_card_holds_the_models_own_rows_only(tmp_path):
    from bicross.card import model_metrics

    model = _trained(tmp_path / "results" / "x" / "iter1" / "bi" / "model", "local/folder/m")
    metrics = tmp_path / "metrics.parquet"
    rows = [(1, "bi", "test", "ndcg@10", 0.5), (1, "bi", "test", "num_queries", 8.0), (1, "cross", "test", "ndcg@10", 0.7),
            (2, "bi", "test", "ndcg@10", 0.6), (1, "bi_b", "test", "ndcg@10", 0.4)]
    write_table(pa.Table.from_pylist([dict(zip(METRICS.names, r, strict=True)) for r in rows], schema=METRICS),
                metrics, METRICS)
    mine = model_metrics(metrics, model_place(model))
    assert [(r["metric"], r["value"]) for r in mine] == [("ndcg@10", 0.5), ("num_queries", 8.0)]
    text = card_text(model, metrics=mine, experiment="x")
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["metrics"] == ["ndcg@10"] and "base_model" not in front  # a count is no metric; no hub id
    assert "| test | ndcg@10 | 0.5000 |" in text and "| test | num_queries | 8 |" in text
    assert "0.7" not in text and "0.6000" not in text


def test_export_refuses_a_cross_encoder_with_two_labels(tmp_path):
    from bicross.export import export_model

    model = _trained(tmp_path / "res" / "iter1" / "cross" / "model", "m")
    (model / "config.json").write_text(json.dumps({"id2label": {"0": "NO", "1": "YES"}}))
    with pytest.raises(InputError, match="one label"):
        export_model(tmp_path / "res", 1, "cross", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_export_names_the_files_a_bi_encoder_lacks(tmp_path):
    from bicross.export import export_model

    model = _trained(tmp_path / "res" / "iter1" / "bi" / "model", "m")
    (model / "modules.json").write_text("[]")
    with pytest.raises(InputError, match=r"sentence_bert_config.json.*1_Pooling/config.json"):
        export_model(tmp_path / "res", 1, "bi", tmp_path / "out")
