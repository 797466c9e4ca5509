"""The optimisation settings every training recipe shares (`TrainConfig`) and how a recipe declares its own
(`setting`). Free of torch on purpose: the workflow reads each recipe's hyperparameters while Snakemake
parses the Snakefile (bicross.train.hparams_for, trained_keys), and importing torch there would add
about 2 s to every `snakemake` call, dry runs included."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from bicross.errors import ConfigError


def setting(default: Any, help: str) -> Any:
    """A hyperparameter: its default and a one-line help, the one place both live."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Optimisation settings shared by every recipe; a recipe's dataclass extends them with its own."""

    model: str = setting("sentence-transformers/all-MiniLM-L6-v2", "model to start from: local folder or hub name")
    batch_size: int = setting(2, "examples per device per micro-batch")
    gradient_accumulation: int = setting(1, "micro-batches per optimizer step")
    learning_rate: float = setting(5e-5, "peak AdamW learning rate (0 freezes the weights)")
    head_learning_rate: float | None = setting(
        None, "learning rate of the parameters outside the base model (a new head); null: learning_rate")
    warmup_ratio: float = setting(0.1, "share of the steps with a linear warm-up, then linear decay")
    weight_decay: float = setting(0.01, "AdamW weight decay (none on biases and norm weights)")
    epochs: float = setting(3.0, "passes over the training examples")
    max_steps: int | None = setting(None, "optimizer steps; overrides epochs when set")
    max_grad_norm: float | None = setting(1.0, "gradient clipping norm; null or 0: no clipping")
    precision: str = setting("auto", "auto | fp32 | bf16 | fp16 (auto: bf16 where the device runs it fast)")
    gradient_checkpointing: bool = setting(False, "recompute activations in backward (less memory, slower)")
    freeze_layers: int = setting(
        0, "the embeddings and the first N transformer layers keep their weights (no backward through them)")
    attention_dropout: float = setting(0.0, "attention dropout while training (0 is about 2x faster on CPU)")
    checkpoint_every: int = setting(200, "optimizer steps between checkpoints (a restarted job resumes)")
    keep_checkpoints: int = setting(2, "newest checkpoints kept")
    log_every: int = setting(10, "optimizer steps between loss log lines")
    seed: int = setting(42, "seed of the model's new weights, dropout and the data order")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> TrainConfig:
        """`values` over the defaults, checked; an unknown key is a ConfigError (a typo must not pass)."""
        values = dict(values or {})
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} hyperparameters {unknown}; known: {sorted(names)}")
        config = cls(**values)
        config.validate()
        return config

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}

    def validate(self) -> None:
        if int(self.freeze_layers) < 0:
            raise ConfigError(f"freeze_layers must be >= 0, got {self.freeze_layers}")
        for name in ("batch_size", "gradient_accumulation", "checkpoint_every", "keep_checkpoints", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is None and not self.epochs > 0:
            raise ConfigError(f"epochs must be > 0 (or set max_steps), got {self.epochs}")
        if self.max_steps is not None and int(self.max_steps) < 1:
            raise ConfigError(f"max_steps must be >= 1 or null, got {self.max_steps}")
        if not 0 <= self.warmup_ratio <= 1:
            raise ConfigError(f"warmup_ratio must be in [0, 1], got {self.warmup_ratio}")
        if self.learning_rate < 0:  # 0 freezes the weights (how the tests make a model that learns nothing)
            raise ConfigError(f"learning_rate must be >= 0, got {self.learning_rate}")
        if self.head_learning_rate is not None and self.head_learning_rate < 0:
            raise ConfigError(f"head_learning_rate must be >= 0 or null, got {self.head_learning_rate}")
