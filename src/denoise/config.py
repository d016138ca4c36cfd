"""params.yaml, parsed and validated once into typed, frozen objects.

Every error names the full key (for example `train.loss`) and what is allowed, so a stage can stop
before doing any work.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import ConfigError

NOISE_TYPES = ("gaussian", "poisson", "salt_pepper", "speckle")
# The params key that holds the level of each noise type, its unit and its allowed range.
NOISE_LEVEL_KEYS = {"gaussian": "sigma", "speckle": "sigma", "poisson": "peak", "salt_pepper": "amount"}
MODELS = ("seed", "dncnn", "unet")
LOSSES = ("bce", "mse", "l1", "rmse", "psnr")
SCHEDULES = ("constant", "cosine", "step")
PRECISIONS = ("auto", "float32", "mixed_bfloat16")
BASELINES = ("auto", "bm3d", "nlm", "none")
ENSEMBLE_SIZES = (1, 2, 4, 8)  # evaluate.self_ensemble: how many flips/rotations of each input are averaged
UNET_ONLY = {"noise_map": "takes a noise-level map", "full_width": "has full-resolution layers", "zero_init_residual": "has residual blocks"}


@dataclass(frozen=True)
class Levels:
    """Noise levels: a list of fixed levels, or a uniform range {min, max} (blind training)."""

    values: tuple[float, ...] = ()
    low: float | None = None
    high: float | None = None

    @property
    def is_range(self) -> bool:
        return self.low is not None

    @property
    def bounds(self) -> tuple[float, float]:
        return (self.low, self.high) if self.is_range else (min(self.values), max(self.values))

    def label(self, value: float) -> str:
        """The group a stored noisy copy is reported under in the metrics."""
        if self.is_range:
            return f"{_fmt(self.low)}-{_fmt(self.high)}"
        return _fmt(value)

    @classmethod
    def parse(cls, raw, key: str, low: float, high: float) -> "Levels":
        allowed = f"a number in [{_fmt(low)}, {_fmt(high)}], a list of such numbers, or {{min: a, max: b}}"
        if isinstance(raw, dict):
            if set(raw) != {"min", "max"}:
                raise ConfigError(f"{key}: a range needs exactly the keys min and max, got {sorted(raw)}")
            lo, hi = (_number(raw[k], f"{key}.{k}", low, high) for k in ("min", "max"))
            if lo > hi:
                raise ConfigError(f"{key}: min ({_fmt(lo)}) must not exceed max ({_fmt(hi)})")
            return cls(low=lo, high=hi)
        if isinstance(raw, list):
            if not raw:
                raise ConfigError(f"{key}: empty list; expected {allowed}")
            values = tuple(_number(v, key, low, high) for v in raw)
            if len(set(values)) != len(values):
                raise ConfigError(f"{key}: repeated level in {raw}")
            return cls(values=values)
        return cls(values=(_number(raw, key, low, high),))

    def to_yaml(self):
        if self.is_range:
            return {"min": self.low, "max": self.high}
        return list(self.values) if len(self.values) > 1 else self.values[0]


def _fmt(x: float) -> str:
    return f"{x:g}"


def _number(raw, key: str, low: float, high: float) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ConfigError(f"{key}: expected a number in [{_fmt(low)}, {_fmt(high)}], got {raw!r}")
    if not low <= raw <= high:
        raise ConfigError(f"{key}: {raw!r} is out of range; allowed [{_fmt(low)}, {_fmt(high)}]")
    return float(raw)


def _choice(value: str, key: str, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}: unknown value {value!r}; allowed: {', '.join(map(str, allowed))}")


def _at_least(value, key: str, minimum) -> None:
    if value < minimum:
        raise ConfigError(f"{key}: {value!r} is too small; must be >= {minimum}")


def _fraction(value: float, key: str) -> None:
    if not 0 < value < 1:
        raise ConfigError(f"{key}: {value!r} must be strictly between 0 and 1")


def _source_path(source: str, key: str) -> None:
    path = Path(source)
    if not (path.is_dir() or (path.is_file() and path.suffix == ".txt")):
        raise ConfigError(f"{key}: {source!r} is neither a folder of images nor a .txt list of bundled photos")


@dataclass(frozen=True)
class DataConfig:
    source: str = "data/sample.txt"
    channels: int = 3
    max_side: int | None = 512

    def validate(self, key: str) -> None:
        _choice(self.channels, f"{key}.channels", (1, 3))
        if self.max_side is not None:
            _at_least(self.max_side, f"{key}.max_side", 16)
        _source_path(self.source, f"{key}.source")


@dataclass(frozen=True)
class NoiseConfig:
    type: str = "gaussian"
    sigma: Levels = Levels(values=(25.0,))
    peak: Levels = Levels(values=(30.0,))
    amount: Levels = Levels(values=(0.05,))
    clip: bool = False
    seed: int = 0

    LIMITS = {"sigma": (0.0, 255.0), "peak": (0.1, 1e6), "amount": (0.0, 1.0)}

    @property
    def level_key(self) -> str:
        return NOISE_LEVEL_KEYS[self.type]

    @property
    def levels(self) -> Levels:
        return getattr(self, self.level_key)

    def validate(self, key: str) -> None:
        _choice(self.type, f"{key}.type", NOISE_TYPES)


@dataclass(frozen=True)
class SplitConfig:
    test_fraction: float = 0.2
    val_fraction: float = 0.1
    test_source: tuple[str, ...] | None = None
    seed: int = 0

    def validate(self, key: str) -> None:
        _fraction(self.test_fraction, f"{key}.test_fraction")
        _fraction(self.val_fraction, f"{key}.val_fraction")
        for source in self.test_source or ():
            _source_path(source, f"{key}.test_source")


@dataclass(frozen=True)
class BaselineConfig:
    method: str = "auto"
    workers: int = 1

    def validate(self, key: str) -> None:
        _choice(self.method, f"{key}.method", BASELINES)
        _at_least(self.workers, f"{key}.workers", 1)


@dataclass(frozen=True)
class TrainConfig:
    model: str = "dncnn"
    depth: int = 17
    width: int = 64
    loss: str = "l1"
    final_loss: str | None = None
    final_epochs: int = 0
    final_patch_size: int | None = None
    final_batch_size: int | None = None
    epochs: int = 10
    steps_per_epoch: int = 100
    batch_size: int = 32
    patch_size: int = 48
    learning_rate: float = 1e-3
    schedule: str = "cosine"
    warmup_steps: int = 0
    clip_norm: float | None = None
    augment: bool = True
    fresh_noise: bool = True
    fresh_levels: Levels | None = None
    mixed_precision: str = "auto"
    ema: float | None = None
    weight_by_noise: bool = False
    noise_map: bool = False
    full_width: int = 0
    patch_candidates: int = 1
    scales: tuple[float, ...] = (1.0,)
    zero_init_residual: bool = False
    seed: int = 0

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def final_phase(self) -> "TrainConfig":
        """The settings of the last final_epochs: final_patch_size and final_batch_size, where set."""
        return dataclasses.replace(self, patch_size=self.final_patch_size or self.patch_size, batch_size=self.final_batch_size or self.batch_size)

    def validate(self, key: str) -> None:
        _choice(self.model, f"{key}.model", MODELS)
        _choice(self.loss, f"{key}.loss", LOSSES)
        if self.final_loss is not None:
            _choice(self.final_loss, f"{key}.final_loss", LOSSES)
        _at_least(self.final_epochs, f"{key}.final_epochs", 0)
        if self.final_epochs > self.epochs:
            raise ConfigError(f"{key}.final_epochs: {self.final_epochs} is more than the {self.epochs} epochs (train.epochs)")
        if self.final_epochs and self.final_loss is None and self.final_patch_size is None and self.final_batch_size is None:
            raise ConfigError(f"{key}.final_epochs: {self.final_epochs} epochs of what? set train.final_loss, final_patch_size "
                              "or final_batch_size too, or final_epochs to 0")
        _choice(self.schedule, f"{key}.schedule", SCHEDULES)
        _choice(self.mixed_precision, f"{key}.mixed_precision", PRECISIONS)
        _at_least(self.depth, f"{key}.depth", 1 if self.model == "unet" else 3)
        for name in ("width", "epochs", "steps_per_epoch", "batch_size"):
            _at_least(getattr(self, name), f"{key}.{name}", 1)
        if self.final_batch_size is not None:
            _at_least(self.final_batch_size, f"{key}.final_batch_size", 1)
        for name in ("patch_size", "final_patch_size"):
            size = getattr(self, name)
            if size is None:
                continue
            _at_least(size, f"{key}.{name}", 8)
            if self.model == "seed" and size % 4:
                raise ConfigError(f"{key}.{name}: the seed model pools twice, so it must be a multiple of 4")
            if self.model == "unet" and size % 8:
                raise ConfigError(f"{key}.{name}: the unet model halves the size three times, so it must be a multiple of 8")
        if not 0 < self.learning_rate < 1:
            raise ConfigError(f"{key}.learning_rate: {self.learning_rate!r} must be in (0, 1)")
        _at_least(self.warmup_steps, f"{key}.warmup_steps", 0)
        if self.warmup_steps >= self.total_steps:
            raise ConfigError(f"{key}.warmup_steps: {self.warmup_steps} must be fewer than the {self.total_steps} training steps")
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise ConfigError(f"{key}.clip_norm: {self.clip_norm!r} must be null or a positive gradient norm, such as 1.0")
        _at_least(self.full_width, f"{key}.full_width", 0)
        _at_least(self.patch_candidates, f"{key}.patch_candidates", 1)
        if not all(0 < scale <= 1 for scale in self.scales) or len(set(self.scales)) != len(self.scales):
            raise ConfigError(f"{key}.scales: {list(self.scales)} must be different numbers in (0, 1], such as [1, 0.9, 0.8, 0.7]")
        if self.scales != (1.0,) and not self.fresh_noise:
            raise ConfigError(f"{key}.scales: rescaled training images need fresh noise ({key}.fresh_noise: true); "
                              "the noise stage's noisy copies are not rescaled")
        for name, what in UNET_ONLY.items():
            value = getattr(self, name)
            if value and self.model != "unet":
                off = "false" if isinstance(value, bool) else "0"
                raise ConfigError(f"{key}.{name}: only the unet model {what}; set it to {off} for {self.model}")
        if self.ema is not None and not 0 < self.ema < 1:
            raise ConfigError(f"{key}.ema: {self.ema!r} must be null or a momentum in (0, 1), such as 0.999")


@dataclass(frozen=True)
class EvaluateConfig:
    train_sample: int = 4
    compare_images: int = 3
    self_ensemble: int = 1

    def validate(self, key: str) -> None:
        _at_least(self.train_sample, f"{key}.train_sample", 0)
        _at_least(self.compare_images, f"{key}.compare_images", 0)
        _choice(self.self_ensemble, f"{key}.self_ensemble", ENSEMBLE_SIZES)


@dataclass(frozen=True)
class Params:
    data: DataConfig = field(default_factory=DataConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    reference: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)


def _parse_value(raw, annotation, key: str, owner):
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if raw is None:
            return None
        return _parse_value(raw, options[0], key, owner)
    if origin is tuple and typing.get_args(annotation)[0] is float:  # a list of numbers; a single number is a list of one
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            raise ConfigError(f"{key}: empty list; expected a number or a list of numbers")
        return tuple(_parse_value(item, float, key, owner) for item in items)
    if origin is tuple:  # a list of strings; a single string is a list of one
        items = raw if isinstance(raw, list) else [raw]
        if not items or not all(isinstance(item, str) for item in items):
            raise ConfigError(f"{key}: expected a path or a list of paths, got {raw!r}")
        return tuple(items)
    if annotation is Levels:
        low, high = NoiseConfig.LIMITS.get(key.rsplit(".", 1)[-1], (0.0, 255.0))
        return Levels.parse(raw, key, low, high)
    if annotation is bool:
        if not isinstance(raw, bool):
            raise ConfigError(f"{key}: expected true or false, got {raw!r}")
        return raw
    if annotation is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ConfigError(f"{key}: expected an integer, got {raw!r}")
        return raw
    if annotation is float:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {raw!r}")
        return float(raw)
    if annotation is str:
        if not isinstance(raw, str):
            raise ConfigError(f"{key}: expected a string, got {raw!r}")
        return raw
    raise TypeError(f"unsupported annotation {annotation!r} for {key}")


def parse_section(cls, raw, key: str):
    """One params section (a mapping, or None for the defaults) validated into `cls`; errors name `key`."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{key}: expected a mapping of keys, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}: unknown key; allowed: {', '.join(names)}")
    values = {name: _parse_value(raw[name], hints[name], f"{key}.{name}", cls) for name in names if name in raw}
    section = cls(**values)
    section.validate(key)
    return section


def parse_params(raw: dict) -> Params:
    """Validate a params mapping (as read from params.yaml) into a Params object."""
    if not isinstance(raw, dict):
        raise ConfigError("params.yaml: expected a mapping of sections")
    hints = typing.get_type_hints(Params)
    sections = [f.name for f in dataclasses.fields(Params)]
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown section; allowed: {', '.join(sections)}")
    return Params(**{name: parse_section(hints[name], raw.get(name), name) for name in sections})


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found; run from the repository root") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    return parse_params(raw or {})
