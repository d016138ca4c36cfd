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

NOISE_TYPES = ("gaussian", "poisson", "salt_pepper", "speckle", "camera", "none")  # none: the photos are noisy already
# The params key that holds the level of each noise type, its unit and its allowed range.
NOISE_LEVEL_KEYS = {"gaussian": "sigma", "speckle": "sigma", "poisson": "peak", "salt_pepper": "amount", "camera": "shot", "none": "sigma"}
MODELS = ("seed", "dncnn", "unet")
LOSSES = ("bce", "mse", "l1", "psnr")
SCHEDULES = ("constant", "cosine")
PRECISIONS = ("auto", "float32", "mixed_bfloat16")
BACKENDS = ("tensorflow", "jax")
BASELINES = ("auto", "bm3d", "nlm", "none")
TARGETS = ("clean", "neighbor2neighbor")  # train.target: what a batch trains toward (targets.py)
FINAL_TARGETS = ("refined",)  # train.final.target: what the last epochs of a self-supervised run train toward (targets.py)
# export.formats: what `denoise export` writes, and the exported file's suffix (a SavedModel is a folder)
EXPORT_SUFFIXES = {"onnx": ".onnx", "openvino": ".xml", "litert": ".tflite", "saved_model": ""}
EXPORT_FORMATS = tuple(EXPORT_SUFFIXES)
ENSEMBLE_SIZES = (1, 2, 4, 8)  # evaluate.self_ensemble: how many flips/rotations of each input are averaged
UNET_ONLY = {"noise_map": "takes a noise-level map", "full_width": "has full-resolution layers"}


@dataclass(frozen=True)
class Levels:
    """Noise levels: a list of fixed levels, or a uniform range {min, max} (blind training), log-uniform
    with `log: true`."""

    values: tuple[float, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False

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
            if not {"min", "max"} <= set(raw) <= {"min", "max", "log"}:
                raise ConfigError(f"{key}: a range needs the keys min and max (and optionally log), got {sorted(raw)}")
            lo, hi = (_number(raw[k], f"{key}.{k}", low, high) for k in ("min", "max"))
            if lo > hi:
                raise ConfigError(f"{key}: min ({_fmt(lo)}) must not exceed max ({_fmt(hi)})")
            log = raw.get("log", False)
            if not isinstance(log, bool):
                raise ConfigError(f"{key}.log: expected true or false, got {log!r}")
            if log and lo <= 0:
                raise ConfigError(f"{key}.min: a log-uniform range needs min > 0, got {_fmt(lo)}")
            return cls(low=lo, high=hi, log=log)
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
            return {"min": self.low, "max": self.high, **({"log": True} if self.log else {})}
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
    pattern: str = "*"
    channels: int = 3
    max_side: int | None = 512

    def validate(self, key: str) -> None:
        _choice(self.channels, f"{key}.channels", (1, 3))
        if self.max_side is not None:
            _at_least(self.max_side, f"{key}.max_side", 16)
        _source_path(self.source, f"{key}.source")


@dataclass(frozen=True)
class CameraSteps:
    """The camera pipeline's random steps after its noise (noise.py): the JPEG quality and the width of the
    camera's noise reduction, each drawn per image from its Levels; None skips the step."""

    jpeg_quality: Levels | None = None
    nr: Levels | None = None


@dataclass(frozen=True)
class NoiseConfig:
    type: str = "gaussian"
    sigma: Levels = Levels(values=(25.0,))
    peak: Levels = Levels(values=(30.0,))
    amount: Levels = Levels(values=(0.05,))
    shot: Levels = Levels(low=1e-4, high=0.012, log=True)
    jpeg_quality: Levels = Levels(low=75.0, high=100.0)
    nr: Levels = Levels(low=0.0, high=2.0)
    clip: bool = False
    seed: int = 0

    LIMITS = {"sigma": (0.0, 255.0), "peak": (0.1, 1e6), "amount": (0.0, 1.0), "shot": (1e-6, 1.0), "jpeg_quality": (1.0, 100.0), "nr": (0.0, 8.0)}

    @property
    def level_key(self) -> str:
        return NOISE_LEVEL_KEYS[self.type]

    @property
    def camera(self) -> CameraSteps:
        """What camera noise does after its noise, as params.yaml sets it (noise.jpeg_quality, noise.nr)."""
        return CameraSteps(self.jpeg_quality, self.nr)

    @property
    def levels(self) -> Levels:
        return getattr(self, self.level_key)

    def with_levels(self, levels: Levels | None) -> "NoiseConfig":
        """This noise at other levels of its type's key (None: unchanged)."""
        return self if levels is None else dataclasses.replace(self, **{self.level_key: levels})

    def validate(self, key: str) -> None:
        _choice(self.type, f"{key}.type", NOISE_TYPES)


@dataclass(frozen=True)
class SplitConfig:
    test_fraction: float = 0.2
    val_fraction: float = 0.1
    test_source: tuple[str, ...] | None = None
    test_levels: Levels | None = None  # the test_source folders' noise levels, where they differ from the noise section's
    seed: int = 0

    def validate(self, key: str) -> None:
        _fraction(self.test_fraction, f"{key}.test_fraction")
        _fraction(self.val_fraction, f"{key}.val_fraction")
        for source in self.test_source or ():
            _source_path(source, f"{key}.test_source")
        if self.test_levels is not None and self.test_source is None:
            raise ConfigError(f"{key}.test_levels: sets the noise of the {key}.test_source folders, and there are none; "
                              "set test_source or leave test_levels null")


@dataclass(frozen=True)
class BaselineConfig:
    method: str = "auto"
    workers: int = 1

    def validate(self, key: str) -> None:
        _choice(self.method, f"{key}.method", BASELINES)
        _at_least(self.workers, f"{key}.workers", 1)


@dataclass(frozen=True)
class ModelConfig:
    """train.model: the network."""

    name: str = "unet"
    depth: int = 1
    width: int = 64
    noise_map: bool = False
    noise_scales: int = 1
    full_width: int = 0

    def validate(self, key: str) -> None:
        _choice(self.name, f"{key}.name", MODELS)
        _at_least(self.noise_scales, f"{key}.noise_scales", 1)
        if self.noise_scales > 1 and not self.noise_map:
            raise ConfigError(f"{key}.noise_scales: {self.noise_scales} maps need noise_map: true (or set noise_scales: 1)")
        _at_least(self.depth, f"{key}.depth", 3 if self.name == "dncnn" else 1)
        _at_least(self.width, f"{key}.width", 1)
        _at_least(self.full_width, f"{key}.full_width", 0)
        for name, what in UNET_ONLY.items():
            value = getattr(self, name)
            if value and self.name != "unet":
                off = "false" if isinstance(value, bool) else "0"
                raise ConfigError(f"{key}.{name}: only the unet model {what}; set it to {off} for {self.name}")

    @property
    def size_multiple(self) -> int:
        """Patch sides must be multiples of this: the network's total downsampling."""
        return {"seed": 4, "unet": 8}.get(self.name, 1)


@dataclass(frozen=True)
class OptimizerConfig:
    """train.optimizer: Adam on a learning-rate schedule."""

    learning_rate: float = 1e-3
    schedule: str = "cosine"
    warmup_steps: int = 0

    def validate(self, key: str) -> None:
        if not 0 < self.learning_rate < 1:
            raise ConfigError(f"{key}.learning_rate: {self.learning_rate!r} must be in (0, 1)")
        _choice(self.schedule, f"{key}.schedule", SCHEDULES)
        _at_least(self.warmup_steps, f"{key}.warmup_steps", 0)


@dataclass(frozen=True)
class SamplingConfig:
    """train.sampling: how training batches are cut from the training images."""

    batch_size: int = 8
    patch_size: int = 64
    augment: bool = True
    fresh_noise: bool = True
    fresh_levels: Levels | None = None
    noise_types: tuple[str, ...] | None = None
    zoom: Levels | None = None
    zoom_types: tuple[str, ...] | None = None

    LIMITS = {"zoom": (1.0, 8.0)}

    def validate(self, key: str) -> None:
        for name in self.zoom_types or ():
            if name not in (self.noise_types or ()):
                raise ConfigError(f"{key}.zoom_types: {name!r} is not one of {key}.noise_types ({', '.join(self.noise_types or ()) or 'none set'})")
        if self.zoom and not self.fresh_noise:
            raise ConfigError(f"{key}.zoom: zoomed clean patches need fresh noise ({key}.fresh_noise: true); the stored noisy copies cannot be zoomed")
        for name in self.noise_types or ():
            _choice(name, f"{key}.noise_types", NOISE_TYPES)
        if self.noise_types and not self.fresh_noise:
            raise ConfigError(f"{key}.noise_types: a mix of noise types needs {key}.fresh_noise: true")
        _at_least(self.batch_size, f"{key}.batch_size", 1)
        _at_least(self.patch_size, f"{key}.patch_size", 8)


@dataclass(frozen=True)
class FinalPhaseConfig:
    """train.final: what changes for the last `epochs` epochs (the loss, the patch and batch size, and for a
    self-supervised run the target: `refined`, targets.py)."""

    epochs: int = 0
    loss: str | None = None
    patch_size: int | None = None
    batch_size: int | None = None
    target: str | None = None

    def validate(self, key: str) -> None:
        _at_least(self.epochs, f"{key}.epochs", 0)
        if self.target is not None:
            _choice(self.target, f"{key}.target", FINAL_TARGETS)
        if self.loss is not None:
            _choice(self.loss, f"{key}.loss", LOSSES)
        if self.patch_size is not None:
            _at_least(self.patch_size, f"{key}.patch_size", 8)
        if self.batch_size is not None:
            _at_least(self.batch_size, f"{key}.batch_size", 1)
        if self.epochs and self.loss is None and self.patch_size is None and self.batch_size is None and self.target is None:
            raise ConfigError(f"{key}.epochs: {self.epochs} epochs of what? set {key}.loss, patch_size, batch_size or target "
                              "too, or epochs to 0")


# Flat train keys of earlier versions, and where each lives now (a params.yaml written for them gets told).
MOVED = {**{k: f"model.{k}" for k in ("depth", "width", "noise_map", "full_width")},
         **{k: f"optimizer.{k}" for k in ("learning_rate", "schedule", "warmup_steps")},
         **{k: f"sampling.{k}" for k in ("batch_size", "patch_size", "augment", "fresh_noise", "fresh_levels")},
         "final_loss": "final.loss", "final_epochs": "final.epochs", "final_patch_size": "final.patch_size",
         "final_batch_size": "final.batch_size"}
# Knobs that lost their experiments and left the code (docs/experiments.md has their results).
REMOVED = {"TrainConfig": ("ema", "weight_by_noise", "scales", "patch_candidates", "clip_norm", "zero_init_residual"),
           "NoiseConfig": ("nr_edge", "sharpen")}


@dataclass(frozen=True)
class TrainConfig:
    """A `train` section (and `reference`, which states only how it differs from `train`)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    target: str = "clean"
    loss: str = "l1"
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    final: FinalPhaseConfig = field(default_factory=FinalPhaseConfig)
    epochs: int = 10
    steps_per_epoch: int = 100
    backend: str = "tensorflow"
    devices: int | str = "auto"
    workers: int = 1
    mixed_precision: str = "auto"
    seed: int = 0

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def final_sampling(self) -> SamplingConfig:
        """The sampling of the last final.epochs: final.patch_size and final.batch_size, where set."""
        return dataclasses.replace(self.sampling, patch_size=self.final.patch_size or self.sampling.patch_size,
                                   batch_size=self.final.batch_size or self.sampling.batch_size)

    @property
    def first_final_step(self) -> int:
        return (self.epochs - self.final.epochs) * self.steps_per_epoch

    @property
    def self_supervised(self) -> bool:
        return self.target == "neighbor2neighbor"

    @property
    def refines(self) -> bool:
        """The last final.epochs train on the network's own refined outputs (train.final.target: refined)."""
        return self.final.target == "refined" and self.final.epochs > 0

    def validate(self, key: str) -> None:
        _choice(self.target, f"{key}.target", TARGETS)
        _choice(self.loss, f"{key}.loss", LOSSES)
        if self.self_supervised:
            if self.sampling.fresh_noise:
                raise ConfigError(f"{key}.sampling.fresh_noise: neighbor2neighbor learns from the noisy images as they are "
                                  "(fresh noise would be made from clean ones); set it to false")
            if self.final.loss is not None and self.final.target is None:
                raise ConfigError(f"{key}.final.loss: neighbor2neighbor has its own loss; set it to null "
                                  f"(or {key}.final.target: refined, whose epochs use it)")
        elif self.final.target is not None and self.final.epochs:  # (a reference section inherits train.final)
            raise ConfigError(f"{key}.final.target: {self.final.target} refines a self-supervised network; "
                              f"{key}.target is {self.target} (it needs neighbor2neighbor)")
        _choice(self.mixed_precision, f"{key}.mixed_precision", PRECISIONS)
        _choice(self.backend, f"{key}.backend", BACKENDS)
        if isinstance(self.devices, str):
            _choice(self.devices, f"{key}.devices", ("auto",))
        else:
            _at_least(self.devices, f"{key}.devices", 1)
            if self.devices > 1 and self.backend != "jax":
                raise ConfigError(f"{key}.devices: {self.devices} devices need {key}.backend: jax (Keras's DataParallel)")
        _at_least(self.workers, f"{key}.workers", 1)
        if self.workers > 1 and self.backend == "tensorflow":
            raise ConfigError(f"{key}.workers: {self.workers} worker processes need {key}.backend: jax "
                              "(under tensorflow, tf.data runs the sampler in its own threads); set it to 1")
        for name in ("epochs", "steps_per_epoch"):
            _at_least(getattr(self, name), f"{key}.{name}", 1)
        if self.final.epochs > self.epochs:
            raise ConfigError(f"{key}.final.epochs: {self.final.epochs} is more than the {self.epochs} epochs ({key}.epochs)")
        if self.optimizer.warmup_steps >= self.total_steps:
            raise ConfigError(f"{key}.optimizer.warmup_steps: {self.optimizer.warmup_steps} must be fewer than the "
                              f"{self.total_steps} training steps")
        for name, size in (("sampling.patch_size", self.sampling.patch_size), ("final.patch_size", self.final.patch_size)):
            halved = self.self_supervised and not (name == "final.patch_size" and self.final.target)  # neighbor2neighbor halves each patch
            multiple = self.model.size_multiple * (2 if halved else 1)
            if size is not None and size % multiple:
                raise ConfigError(f"{key}.{name}: the {self.model.name} model downsamples {self.model.size_multiple}×"
                                  f"{' (of half-size patches: neighbor2neighbor)' if halved else ''}, so it must be a multiple of {multiple}")


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
class ExportConfig:
    formats: tuple[str, ...] = ("onnx", "openvino", "litert")

    def validate(self, key: str) -> None:
        for name in self.formats:
            _choice(name, f"{key}.formats", EXPORT_FORMATS)
        if len(set(self.formats)) != len(self.formats):
            raise ConfigError(f"{key}.formats: {list(self.formats)} lists a format twice")


@dataclass(frozen=True)
class Params:
    data: DataConfig = field(default_factory=DataConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    reference: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    export: ExportConfig = field(default_factory=ExportConfig)


def _parse_value(raw, annotation, key: str, owner):
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if raw is None:
            return None
        for option in options:  # the first option whose plain type the value has, else the first (for its error)
            if option in (int, str) and isinstance(raw, option) and not isinstance(raw, bool):
                return _parse_value(raw, option, key, owner)
        return _parse_value(raw, options[0], key, owner)
    if origin is tuple and typing.get_args(annotation)[0] is float:  # a list of numbers; a single number is a list of one
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            raise ConfigError(f"{key}: empty list; expected a number or a list of numbers")
        return tuple(_parse_value(item, float, key, owner) for item in items)
    if origin is tuple:  # a list of strings; a single string is a list of one
        items = raw if isinstance(raw, list) else [raw]
        if not items or not all(isinstance(item, str) for item in items):
            raise ConfigError(f"{key}: expected a string or a list of strings, got {raw!r}")
        return tuple(items)
    if annotation is Levels:
        low, high = {**NoiseConfig.LIMITS, **SamplingConfig.LIMITS}.get(key.rsplit(".", 1)[-1], (0.0, 255.0))
        return Levels.parse(raw, key, low, high)
    if dataclasses.is_dataclass(annotation):
        return parse_section(annotation, raw, key)
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
        name = unknown[0]
        if cls is TrainConfig and name in MOVED:
            raise ConfigError(f"{key}.{name}: moved to {key}.{MOVED[name]}")
        if name in REMOVED.get(cls.__name__, ()):
            raise ConfigError(f"{key}.{name}: removed (it lost its experiment: docs/experiments.md); delete the key")
        raise ConfigError(f"{key}.{name}: unknown key; allowed: {', '.join(names)}")
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
    raw = {**raw, "reference": reference_params(raw.get("train"), raw.get("reference"))}
    params = Params(**{name: parse_section(hints[name], raw.get(name), name) for name in sections})
    if params.noise.type == "none":  # noisy photos with no clean versions: only self-supervised training can use them
        for section in ("train", "reference"):
            if not getattr(params, section).self_supervised:
                raise ConfigError(f"{section}.target: clean targets need clean images, and noise.type none says the photos are the "
                                  "noisy ones; use neighbor2neighbor")
        for section in ("train", "reference"):  # refined epochs add fresh noise of the noise model to the refined images
            if getattr(params, section).refines:
                raise ConfigError(f"{section}.final.target: refined adds fresh noise of the noise model, and noise.type is none "
                                  "(no model to draw it from); set final.target to null")
    if params.data.channels != 3:  # camera noise is made on a Bayer mosaic of RGB
        if params.noise.type == "camera":
            raise ConfigError("noise.type: camera noise needs RGB images; set data.channels: 3")
        for section in ("train", "reference"):
            if "camera" in (getattr(params, section).sampling.noise_types or ()):
                raise ConfigError(f"{section}.sampling.noise_types: camera noise needs RGB images; set data.channels: 3")
    return params


def reference_params(train, reference):
    """The `reference` section as a whole train section: `train`'s keys, with those the reference names
    replaced (groups key by key). A reference that names another network does not inherit the model group:
    one network's settings do not carry over to another."""
    train = train if isinstance(train, dict) else {}
    if reference is None:
        return train
    if not isinstance(reference, dict):
        return reference  # parse_section says what is wrong with it
    merged = deep_merge(train, reference)
    own_model, train_model = reference.get("model"), train.get("model")
    train_name = train_model.get("name", ModelConfig.name) if isinstance(train_model, dict) else None
    if isinstance(own_model, dict) and own_model.get("name", train_name) != train_name:
        merged["model"] = own_model
    return merged


def deep_merge(base: dict, changes: dict) -> dict:
    """`base` with `changes` applied: nested mappings are merged key by key, anything else replaced."""
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found; run from the repository root") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    return parse_params(raw or {})
