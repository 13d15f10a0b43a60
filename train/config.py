"""Configuration dataclasses. Defaults are the paper's configuration (docs/model.md);
`TrainConfig.small_corpus()` and `ModelConfig.small_corpus()` give the small-corpus recipe (one switch:
`recipe("small-corpus")`, `--recipe small-corpus`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from auxformer.common.config_dicts import DictConfig
from auxformer.runtime.manifest import PREDICTION_RULES as PREDICTION_RULES  # the runtime checks them

MODEL_NAMES = ("auxformer", "baseline1", "mult", "audio_only", "video_only")
# classical models on utterance-level functionals (train/functionals_model.py), trained on the same splits
CLASSICAL_NAMES = ("functionals-linear",)
POOLING = ("last", "mean")
# How training runs (not what it learns): attention kernel, batch composition, arithmetic
ATTENTION = ("fused", "explicit")  # torch's scaled_dot_product_attention, or the scores spelled out
BATCHING = ("bucketed", "random")  # clips of similar length together, or random batches
PRECISIONS = ("fp32", "bf16", "fp16")
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("plateau", "cosine")
RECIPES = ("paper", "small-corpus")


@dataclass
class ModelConfig(DictConfig):
    num_classes: int = 6
    audio_dim: int = 130
    video_dim: int = 4096
    d_model: int = 130
    num_heads: int = 10
    num_layers: int = 5
    ffn_mult: int = 4
    embed_dropout: float = 0.25
    cross_attn_dropout: float = 0.0  # fusion (cross-modal) encoders
    self_attn_dropout: float = 0.1  # self-attention and auxiliary encoders
    relu_dropout: float = 0.1
    res_dropout: float = 0.1
    out_dropout: float = 0.2
    # Pooling of one vector per clip: the last *valid* frame (the authors' "token", done right) or a
    # masked mean. Either way padding never changes a clip's vector.
    pooling: str = "last"  # on padded clips ending in digital silence "last" reads silence; "mean" does not
    causal: bool = False  # the authors' code had causal masks on; they make no sense for whole clips
    # How the heads become one prediction; heads of absent modalities never vote.
    prediction: str = "mean_logits"
    # The authors' code: one aux MLP + classifier shared by both modalities, aux encoders applied 3x.
    shared_aux_mlp: bool = False
    aux_passes: int = 1

    def __post_init__(self) -> None:
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by num_heads {self.num_heads}")
        if self.d_model % 2:
            raise ValueError("d_model must be even for sinusoidal positional encodings")
        _check_choice("pooling", self.pooling, POOLING)
        _check_choice("prediction", self.prediction, PREDICTION_RULES)
        if self.aux_passes < 1:
            raise ValueError("aux_passes must be >= 1")

    @classmethod
    def small_corpus(cls, **overrides: Any) -> ModelConfig:
        """The small-corpus recipe's model: masked-mean pooling."""
        return cls(**{"pooling": "mean", **overrides})

    @classmethod
    def recipe(cls, name: str, **overrides: Any) -> ModelConfig:
        _check_choice("recipe", name, RECIPES)
        return cls.small_corpus(**overrides) if name == "small-corpus" else cls(**overrides)

    @classmethod
    def authors(cls, **overrides: Any) -> ModelConfig:
        """The authors' code options: shared aux MLP and three tied aux passes."""
        return cls(**{"shared_aux_mlp": True, "aux_passes": 3, **overrides})


@dataclass
class TrainConfig(DictConfig):
    model: str = "auxformer"
    epochs: int = 20
    batch_size: int = 32
    lr: float = 7.25e-4
    optimizer: str = "adam"  # or "adamw"
    weight_decay: float = 0.0
    schedule: str = "plateau"  # x0.1 on a stalled dev loss; or "cosine": per-step warm-up then cosine decay
    warmup_fraction: float = 0.0  # of all steps (cosine)
    plateau_patience: int = 5
    plateau_factor: float = 0.1
    grad_clip: float = 0.8
    label_smoothing: float = 0.0
    class_balance: bool = False  # cross-entropy weighted by inverse training-class frequency
    # SpecAugment-style masks on the audio frames of training batches (train/augment.py)
    time_masks: int = 0
    time_mask_fraction: float = 0.1
    feature_masks: int = 0
    feature_mask_width: int = 13
    early_stop_patience: int = 0  # stop after this many epochs without a better dev loss; 0: never
    # loss weights for the heads (av, audio, video); heads a variant lacks are ignored
    loss_weights: dict[str, float] = field(default_factory=lambda: {"av": 1 / 3, "audio": 1 / 3, "video": 1 / 3})
    training: str = "standard"  # "standard" or "optimized" (modality dropout)
    drop_audio: float = 0.2
    drop_video: float = 0.2
    dropout_per: str = "sample"  # "sample" (default) or "batch" (the authors' code)
    seed: int = 0
    split_seed: int = 0
    split_fractions: tuple[float, float, float] = (0.70, 0.15, 0.15)
    num_threads: int = 0  # 0: leave torch's default
    # Speed only (train/batching.py, train/precision.py): "explicit" + "random" is the earlier path
    attention: str = "fused"
    batching: str = "bucketed"
    precision: str = "fp32"  # bf16 on GPUs or CPUs with native bf16; fp16 on GPUs
    prefetch: int = 2  # batches assembled ahead on as many background threads (0: on the training thread)

    def __post_init__(self) -> None:
        _check_choice("model", self.model, MODEL_NAMES + CLASSICAL_NAMES)
        _check_choice("training", self.training, ("standard", "optimized"))
        _check_choice("dropout_per", self.dropout_per, ("sample", "batch"))
        _check_choice("attention", self.attention, ATTENTION)
        _check_choice("batching", self.batching, BATCHING)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("schedule", self.schedule, SCHEDULES)
        if not 0 <= self.label_smoothing < 1 or not 0 <= self.warmup_fraction < 1:
            raise ValueError("label_smoothing and warmup_fraction must be within [0, 1)")
        if self.drop_audio + self.drop_video > 1:
            raise ValueError("drop_audio + drop_video must be <= 1 (never both dropped)")
        self.split_fractions = tuple(self.split_fractions)  # type: ignore[assignment]

    @classmethod
    def small_corpus(cls, **overrides: Any) -> TrainConfig:
        """AdamW + weight decay, warm-up + cosine, label smoothing, class-balanced loss, audio masks.
        Measured on EmoDB LOSO it did not beat the paper's training (docs/model.md, "Training")."""
        recipe = {
            "optimizer": "adamw",
            "weight_decay": 0.05,
            "schedule": "cosine",
            "warmup_fraction": 0.1,
            "label_smoothing": 0.1,
            "class_balance": True,
            "time_masks": 2,
            "feature_masks": 2,
        }
        return cls(**{**recipe, **overrides})

    @classmethod
    def recipe(cls, name: str, **overrides: Any) -> TrainConfig:
        _check_choice("recipe", name, RECIPES)
        return cls.small_corpus(**overrides) if name == "small-corpus" else cls(**overrides)


@dataclass
class ClassicalConfig(DictConfig):
    """The classical baseline: openSMILE functionals, standardised, into an L2-regularised multinomial
    logistic regression. The L2 strength is chosen on the dev partition (lowest dev log-loss) from
    `l2_grid`, then the model is the one fitted on train with it."""

    # ComParE_2016 beat eGeMAPSv02 on EmoDB leave-one-speaker-out (docs/model.md, "The classical baseline")
    feature_set: str = "ComParE_2016"
    l2_grid: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0)  # penalty l2/2 * |W|^2 on the mean log-loss
    class_weight: str = "none"  # none | balanced (every class weighs the same; no better on EmoDB)
    max_iter: int = 1000

    def __post_init__(self) -> None:
        from auxformer.runtime.media.functionals import check_sets

        check_sets([self.feature_set])
        _check_choice("class_weight", self.class_weight, ("balanced", "none"))
        self.l2_grid = tuple(float(v) for v in self.l2_grid)  # type: ignore[assignment]
        if not self.l2_grid or min(self.l2_grid) <= 0:
            raise ValueError("l2_grid needs at least one positive value")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
