"""freeze_layers: the embeddings and the lowest transformer layers keep their weights, the rest of the model
(upper layers, pooler, head) learns, for the BERT and MPNet families, through the real training loop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from workflow_utils import REPO

from bicross.errors import ConfigError
from bicross.hparams import TrainConfig
from bicross.training import freeze_lower_layers

# A tiny random cross-encoder of each family, trained 3 steps by bicross.training.train with freeze_layers=1;
# prints which parameters changed and which still take a gradient.
SCRIPT = textwrap.dedent("""
    import json, sys
    import torch
    from transformers import BertConfig, BertForSequenceClassification, MPNetConfig, MPNetForSequenceClassification
    from bicross.training import TrainConfig, setup_accelerator, train

    family, checkpoints = sys.argv[1], sys.argv[2]
    accelerator = setup_accelerator("fp32", 0)
    shape = dict(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                 num_labels=1)
    torch.manual_seed(0)
    model = (BertForSequenceClassification(BertConfig(**shape)) if family == "bert"
             else MPNetForSequenceClassification(MPNetConfig(**shape, max_position_embeddings=40, pad_token_id=1)))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ids = torch.randint(3, 50, (24, 10), generator=torch.Generator().manual_seed(0))

    class Pairs(torch.utils.data.Dataset):
        def set_epoch(self, epoch):
            pass

        def __len__(self):
            return len(ids)

        def __getitem__(self, i):
            return ids[i], float(i % 2)

    def collate(items):
        return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])

    def loss_fn(model, batch):
        logits = model(input_ids=batch[0]).logits.squeeze(-1)
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, batch[1])

    config = TrainConfig(batch_size=4, max_steps=3, learning_rate=1e-2, warmup_ratio=0.0, precision="fp32",
                         freeze_layers=1, weight_decay=0.0)
    model, _ = train(accelerator, model, Pairs(), collate, loss_fn, config, checkpoints, settings={"t": family})
    changed = [n for n, p in accelerator.unwrap_model(model).named_parameters() if not torch.equal(p, before[n])]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    print(json.dumps({"names": list(before), "changed": changed, "trainable": trainable}))
""")


@pytest.mark.parametrize("family,base", [("bert", "bert"), ("mpnet", "mpnet")])
def test_frozen_layers_keep_their_weights_and_the_rest_learns(tmp_path, family, base):
    script = tmp_path / "freeze.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, str(script), family, str(tmp_path / "ckpt")], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    frozen = [n for n in out["names"] if n.startswith((f"{base}.embeddings.", f"{base}.encoder.layer.0."))
              or n == f"{base}.encoder.relative_attention_bias.weight"]
    assert frozen and not set(frozen) & set(out["changed"]) and not set(frozen) & set(out["trainable"])
    learning = [n for n in out["names"] if n not in frozen]
    assert any(n.startswith(f"{base}.encoder.layer.1.") for n in learning)
    assert set(out["changed"]) == set(learning) == set(out["trainable"])  # upper layer, pooler, head all move
    if family == "mpnet":
        assert f"{base}.encoder.relative_attention_bias.weight" in frozen


def test_freeze_layers_errors_name_the_setting():
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=16))
    with pytest.raises(ConfigError, match="freeze_layers is 3, but the model has 2 transformer layers"):
        freeze_lower_layers(model, 3)
    with pytest.raises(ConfigError, match="freeze_layers needs a BERT-style model"):
        freeze_lower_layers(torch.nn.Linear(2, 2), 1)
    with pytest.raises(ConfigError, match="freeze_layers must be >= 0"):
        TrainConfig(freeze_layers=-1).validate()
    assert freeze_lower_layers(model, 2) == sum(p.numel() for p in model.parameters()) - sum(
        p.numel() for p in model.pooler.parameters())
