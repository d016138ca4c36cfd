"""The networks: `seed` (the original design, kept as the baseline) and `dncnn` (residual learning).

Both are fully convolutional, so they take images of any size (the seed model needs sides that are
multiples of 4, which tiling.py pads to).
"""

from __future__ import annotations

from pathlib import Path

import keras

from .config import TrainConfig
from .errors import DenoiseError


def seed_model(channels: int) -> keras.Model:
    """The original design: 5 conv layers with LeakyReLU, 2 max-pools, 2 up-samplings, sigmoid output."""
    noisy = keras.Input((None, None, channels), name="noisy")
    x = noisy
    for filters, resample in ((32, "pool"), (64, "pool"), (64, "up"), (32, "up")):
        x = keras.layers.Conv2D(filters, 3, padding="same")(x)
        x = keras.layers.LeakyReLU(0.1)(x)
        x = keras.layers.MaxPooling2D(2)(x) if resample == "pool" else keras.layers.UpSampling2D(2)(x)
    clean = keras.layers.Conv2D(channels, 3, padding="same", activation="sigmoid", dtype="float32")(x)
    return keras.Model(noisy, clean, name="seed")


def dncnn(channels: int, depth: int, width: int) -> keras.Model:
    """DnCNN (Zhang et al. 2017) without BatchNorm: the network predicts the noise, which is
    subtracted from its input in float32 (residual learning)."""
    noisy = keras.Input((None, None, channels), name="noisy")
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(noisy)
    for _ in range(depth - 2):
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(x)
    residual = keras.layers.Conv2D(channels, 3, padding="same", dtype="float32")(x)
    clean = keras.layers.Subtract(dtype="float32")([noisy, residual])
    return keras.Model(noisy, clean, name="dncnn")


def build_model(config: TrainConfig, channels: int) -> keras.Model:
    if config.model == "seed":
        return seed_model(channels)
    return dncnn(channels, config.depth, config.width)


def size_multiple(model: keras.Model) -> int:
    """Input sides must be multiples of this (2 per pooling layer)."""
    pools = sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers)
    return 2**pools


def model_channels(model: keras.Model) -> int:
    return int(model.input_shape[-1])


def load_model(path: str | Path) -> keras.Model:
    """Load a .keras model in Keras's safe mode: a file that carries Python code is refused."""
    path = Path(path)
    if not path.is_file():
        raise DenoiseError(f"{path}: no model there; run `make repro` (or `dvc repro`) first to train one")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DenoiseError(f"{path}: cannot load model ({reason})") from None
