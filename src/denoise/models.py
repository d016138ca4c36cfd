"""The networks: `seed` (the original design, kept as the baseline), `dncnn` (residual learning) and
`unet` (a small multi-scale residual network, fast on CPUs).

All are fully convolutional, so they take images of any size (the seed model needs sides that are
multiples of 4 and the U-Net of 8, which inference.py pads to).
"""

from __future__ import annotations

import math

import keras
import numpy as np

from .config import ModelConfig


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


def _residual_block(x, width: int):
    """conv–ReLU–conv added to its input. The second conv starts at zero, so the block starts as the
    identity (as Goyal et al. 2017's zero γ, or Fixup): without normalization, a stack of randomly
    initialized residual branches starts badly scaled and trains slower (+0.1–0.3 dB: docs/experiments.md)."""
    y = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(x)
    y = keras.layers.Conv2D(width, 3, padding="same", kernel_initializer="zeros")(y)
    return keras.layers.Add()([x, y])


@keras.saving.register_keras_serializable(package="denoise")
class NoiseLevelMap(keras.layers.Layer):
    """Each image's Gaussian noise σ, estimated as Immerkær (1996) does, as a constant map of its size:
    a 3×3 difference-of-Laplacians kernel cancels smooth image content, and for white noise its mean
    absolute response is σ · 6 · √(2/π). Textures inflate the estimate a little; the network learns how
    far to trust it. The map is in units of 50/255 so that it spans about 0–1 over the usual levels.
    With `scales` > 1 there is one map per scale: the same estimate on the image mean-pooled 2×2, 4×4, …,
    times the pooling factor, so that white noise reads the same at every scale while noise that
    demosaicing and a camera's noise reduction made spatially correlated (which the full-resolution
    estimate hardly sees) reads higher at the coarser ones.
    With `sigma` (8-bit units) set, every map is that level instead of the estimate: the strength control
    of `denoise --sigma N`, as FFDNet's noise-level input (set_noise_level)."""

    KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    UNIT = 50 / 255

    def __init__(self, sigma: float | None = None, scales: int = 1, **kwargs):
        kwargs.setdefault("dtype", "float32")  # the estimate is a small difference of large sums
        super().__init__(**kwargs)
        self.sigma, self.scales = sigma, scales

    def _estimate(self, images):
        kernel = np.tile(self.KERNEL[:, :, None, None], (1, 1, images.shape[-1], 1))
        response = keras.ops.depthwise_conv(images, kernel, padding="valid")
        return keras.ops.mean(keras.ops.abs(response), axis=(1, 2, 3), keepdims=True) * math.sqrt(math.pi / 2) / 6

    def call(self, images):
        images = keras.ops.cast(images, "float32")
        zeros = keras.ops.zeros_like(images[..., :1])
        if self.sigma is not None:
            return keras.ops.concatenate([zeros + (self.sigma / 255) / self.UNIT] * self.scales, axis=-1)
        maps = []
        for scale in range(self.scales):
            factor = 2**scale
            pooled = keras.ops.average_pool(images, factor, factor, padding="valid") if factor > 1 else images
            maps.append(zeros + self._estimate(pooled) * factor / self.UNIT)
        return keras.ops.concatenate(maps, axis=-1) if len(maps) > 1 else maps[0]

    def get_config(self):
        return {**super().get_config(), "sigma": self.sigma, "scales": self.scales}


def set_noise_level(model: keras.Model, sigma: float | None) -> bool:
    """Make a loaded model's noise-level map `sigma` (8-bit units; None: estimate it again). Call it before the
    model first runs (a traced function keeps the level it was traced with). False if it has no map."""
    maps = [layer for layer in model.layers if isinstance(layer, NoiseLevelMap)]
    for layer in maps:
        layer.sigma = None if sigma is None else float(sigma)
    return bool(maps)


def unet(channels: int, blocks: int, width: int, levels: int = 3, noise_map: bool = False, full_width: int = 0,
         noise_scales: int = 1) -> keras.Model:
    """A small U-Net in the manner of DRUNet (Zhang et al. 2021), for speed: a 2×2 stride-2
    convolution takes the image to half resolution (as FFDNet's pixel-unshuffle),
    each level has `blocks` residual blocks and twice the width of the one above, strided convolutions
    go down, transposed ones up, skips are added. All the work happens at ¼ to ¹⁄₆₄ of the pixels:
    with one block per level and width 64 the receptive field is 88 pixels (DnCNN-17's is 35) for a
    fifth of DnCNN-17×64's arithmetic. The network predicts the noise, subtracted in float32.
    With `noise_map`, the input also carries the estimated noise level (NoiseLevelMap), as FFDNet's
    noise-level map but estimated from the image itself, so the model stays blind; `noise_scales` maps of it
    at successively coarser scales with `noise_scales` > 1.
    With `full_width`, a residual block of that many channels works at full resolution before the
    first halving and another after the last doubling (joined by a skip), as DRUNet's top level.
    Every residual block starts as the identity (_residual_block)."""
    block = _residual_block
    noisy = keras.Input((None, None, channels), name="noisy")
    x = keras.layers.Concatenate()([noisy, NoiseLevelMap(scales=noise_scales)(noisy)]) if noise_map else noisy
    if full_width:
        x = keras.layers.Conv2D(full_width, 3, padding="same")(x)
        x = top = block(x, full_width)
    x = keras.layers.Conv2D(width, 2, strides=2)(x)
    skips = []
    for level in range(levels - 1):
        for _ in range(blocks):
            x = block(x, width * 2**level)
        skips.append(x)
        x = keras.layers.Conv2D(width * 2 ** (level + 1), 2, strides=2)(x)
    for _ in range(blocks):
        x = block(x, width * 2 ** (levels - 1))
    for level in reversed(range(levels - 1)):
        x = keras.layers.Conv2DTranspose(width * 2**level, 2, strides=2)(x)
        x = keras.layers.Add()([x, skips[level]])
        for _ in range(blocks):
            x = block(x, width * 2**level)
    if full_width:
        x = keras.layers.Conv2DTranspose(full_width, 2, strides=2)(x)
        x = block(keras.layers.Add()([x, top]), full_width)
        residual = keras.layers.Conv2D(channels, 3, padding="same", dtype="float32")(x)
    else:
        residual = keras.layers.Conv2DTranspose(channels, 2, strides=2, dtype="float32")(x)
    clean = keras.layers.Subtract(dtype="float32")([noisy, residual])
    return keras.Model(noisy, clean, name="unet")


def build_model(config: ModelConfig, channels: int) -> keras.Model:
    """The network that train.model describes, for images of `channels` channels."""
    if config.name == "seed":
        return seed_model(channels)
    if config.name == "unet":
        return unet(channels, config.depth, config.width, noise_map=config.noise_map, full_width=config.full_width,
                    noise_scales=config.noise_scales)
    return dncnn(channels, config.depth, config.width)


def size_multiple(model: keras.Model) -> int:
    """Input sides must be multiples of this: the product of the pooling and strided-convolution strides."""
    multiple = 1
    for layer in model.layers:
        if isinstance(layer, keras.layers.MaxPooling2D):
            multiple *= layer.pool_size[0]
        elif isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.Conv2DTranspose):
            multiple *= layer.strides[0]
    return multiple


def model_channels(model: keras.Model) -> int:
    return int(model.input_shape[-1])
