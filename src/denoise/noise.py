"""Noise models, written once in TensorFlow so that the noise stage (one image at a time) and training
with fresh noise (a batch of patches inside tf.data) draw from exactly the same code.

All randomness is stateless: the same seed pair gives the same noise, on any run and in any order.
Levels are in each type's unit: gaussian and speckle σ in 8-bit units, poisson peak (photon count
at white), salt_pepper amount (fraction of pixels).
"""

from __future__ import annotations

import hashlib

import numpy as np
import tensorflow as tf

from .config import Levels, NoiseConfig
from .storage import Stack


def derive_seed(*parts) -> tuple[int, int]:
    """A stateless-RNG seed pair from any parts (ints, strings): same parts, same seed."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:4], "little") >> 1, int.from_bytes(digest[4:8], "little") >> 1


def add_noise(clean: tf.Tensor, noise_type: str, level, seed, clip: bool = False) -> tf.Tensor:
    """Noisy version of `clean` (floats in [0, 1]); `level` broadcasts against `clean` (per patch)."""
    clean = tf.convert_to_tensor(clean, tf.float32)
    level = tf.cast(level, tf.float32)
    shape = tf.shape(clean)
    if noise_type == "gaussian":
        noisy = clean + tf.random.stateless_normal(shape, seed) * (level / 255.0)
    elif noise_type == "speckle":
        noisy = clean + clean * tf.random.stateless_normal(shape, seed) * (level / 255.0)
    elif noise_type == "poisson":
        counts = tf.random.stateless_poisson(shape, seed, lam=tf.maximum(clean, 0.0) * level, dtype=tf.float32)
        noisy = counts / level
    elif noise_type == "salt_pepper":
        draw = tf.random.stateless_uniform(shape, seed)
        noisy = tf.where(draw < level / 2, 1.0, tf.where(draw > 1 - level / 2, 0.0, clean))
    else:
        raise ValueError(f"unknown noise type {noise_type!r}")
    return tf.clip_by_value(noisy, 0.0, 1.0) if clip else noisy


def sample_levels(levels: Levels, count, seed) -> tf.Tensor:
    """`count` levels drawn from a range (uniform) or a list (uniform choice), as float32."""
    if levels.is_range:
        return tf.random.stateless_uniform([count], seed, levels.low, levels.high)
    pick = tf.random.stateless_uniform([count], seed, 0, len(levels.values), dtype=tf.int32)
    return tf.gather(tf.constant(levels.values, tf.float32), pick)


def noisy_copies(clean: np.ndarray, image_hash: str, config: NoiseConfig):
    """Yield (level, noisy) for one image: one copy per listed level, or one at a level drawn from
    the range. Seeds come from the global seed and the image's content hash, so adding an image
    never changes another image's noise."""
    levels = config.levels
    if levels.is_range:
        level_seed = derive_seed("level", config.seed, image_hash)
        chosen = [float(sample_levels(levels, 1, level_seed)[0])]
    else:
        chosen = list(levels.values)
    for level in chosen:
        seed = derive_seed("noise", config.seed, image_hash, config.type, level)
        yield level, add_noise(clean, config.type, level, seed, config.clip).numpy()


def add_noise_to_stack(clean: Stack, config: NoiseConfig) -> Stack:
    """Noisy copies of every clean image (one per level), each entry naming its clean image and level."""
    noisy = Stack()
    for entry, image in zip(clean.entries, clean.images):
        for level, copy in noisy_copies(image, entry["sha256"], config):
            noisy.append({"name": entry["name"], "level": level, "group": config.levels.label(level)}, copy)
    return noisy
