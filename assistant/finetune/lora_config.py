"""The local LoRA run's hyperparameters, validated up front (like peft's LoraConfig) so a typo fails in one line
before minutes of model loading. Defaults suit a 135M model on a 2-core CPU and a few hundred examples."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from assistant.errors import ConfigError


class LoraTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    r: int = Field(8, ge=1, le=256, description="LoRA rank")
    alpha: int = Field(16, ge=1, le=1024, description="LoRA scaling numerator (scale = alpha / r)")
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"], min_length=1)
    learning_rate: float = Field(1e-3, gt=0, le=1)
    epochs: int = Field(3, ge=1, le=100)
    batch_size: int = Field(8, ge=1, le=512)
    gradient_accumulation: int = Field(1, ge=1, le=512)
    max_length: int = Field(384, ge=16, le=8192, description="tokens per example; longer ones are cut")
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0, lt=1)
    eval_every: int = Field(0, ge=0, description="validate every N optimizer steps; 0 = once per epoch")
    patience: int = Field(2, ge=0, description="evaluations without improvement before stopping; 0 = never")
    checkpoint_every: int = Field(10, ge=1, description="optimizer steps between resumable checkpoints")
    val_fraction: float = Field(0.1, ge=0, lt=1)
    seed: int = 0

    @model_validator(mode="after")
    def _known_modules(self) -> LoraTrainConfig:
        if any(not m.strip() for m in self.target_modules):
            raise ValueError("target_modules contains an empty name")
        return self

    @classmethod
    def create(cls, **values: object) -> LoraTrainConfig:
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']} (got {e.get('input')!r})"
                                 for e in exc.errors())
            raise ConfigError(f"Invalid training option — {problems}.") from None
