"""Noise models, written once in NumPy so that the noise stage (one image at a time) and training with
fresh noise (a batch of patches) draw from the same code, under any Keras backend and on any machine.

All randomness comes from generators seeded by what it is for: the same seed gives the same noise, on
any run and in any order. Levels are in each type's unit: gaussian and speckle σ in 8-bit units,
poisson peak (photon count at white), salt_pepper amount (fraction of pixels).
"""

from __future__ import annotations

import hashlib

import numpy as np

from .config import Levels, NoiseConfig
from .storage import Stack, save_stack_parallel, shard_groups


def derive_seed(*parts) -> tuple[int, int]:
    """A seed pair from any parts (ints, strings): same parts, same seed."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:4], "little") >> 1, int.from_bytes(digest[4:8], "little") >> 1


def generator(seed) -> np.random.Generator:
    """A NumPy generator from a seed (an int or a tuple of ints, as derive_seed gives), or the generator itself."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def add_noise(clean: np.ndarray, noise_type: str, level, seed, clip: bool = False) -> np.ndarray:
    """Noisy float32 version of `clean` (floats in [0, 1]); `level` broadcasts against `clean` (per patch)."""
    rng = generator(seed)
    clean = np.asarray(clean, np.float32)
    level = np.asarray(level, np.float32)
    if noise_type == "gaussian":
        noisy = clean + rng.standard_normal(clean.shape, np.float32) * (level / 255.0)
    elif noise_type == "speckle":
        noisy = clean + clean * rng.standard_normal(clean.shape, np.float32) * (level / 255.0)
    elif noise_type == "poisson":
        noisy = rng.poisson(np.maximum(clean, 0.0) * level).astype(np.float32) / level
    elif noise_type == "salt_pepper":
        draw = rng.random(clean.shape, np.float32)
        noisy = np.where(draw < level / 2, 1.0, np.where(draw > 1 - level / 2, 0.0, clean))
    else:
        raise ValueError(f"unknown noise type {noise_type!r}")
    noisy = noisy.astype(np.float32, copy=False)
    return np.clip(noisy, 0.0, 1.0) if clip else noisy


def sample_levels(levels: Levels, count: int, seed) -> np.ndarray:
    """`count` levels drawn from a range (uniform) or a list (uniform choice), as float32."""
    rng = generator(seed)
    if levels.is_range:
        return rng.uniform(levels.low, levels.high, count).astype(np.float32)
    return np.asarray(levels.values, np.float32)[rng.integers(0, len(levels.values), count)]


def noisy_copies(clean: np.ndarray, image_hash: str, config: NoiseConfig):
    """Yield (level, noisy) for one image: one copy per listed level, or one at a level drawn from
    the range. Seeds come from the global seed and the image's content hash, so adding an image
    never changes another image's noise."""
    levels = config.levels
    if levels.is_range:
        chosen = [float(sample_levels(levels, 1, derive_seed("level", config.seed, image_hash))[0])]
    else:
        chosen = list(levels.values)
    for level in chosen:
        yield level, add_noise(clean, config.type, level, derive_seed("noise", config.seed, image_hash, config.type, level), config.clip)


def noisy_stack(clean: Stack, config: NoiseConfig):
    """Yield (entry, noisy) for every clean image and level, in order, in this process; each entry names
    its clean image and level. The noise depends on the image's content hash alone."""
    for entry, image in clean:
        for level, copy in noisy_copies(image, entry["sha256"], config):
            yield {"name": entry["name"], "level": level, "group": config.levels.label(level)}, copy


def _noisy_shard(job):
    return noisy_stack(*job)


def save_noisy_stack(path, clean: Stack, config: NoiseConfig, processes: int | None = None) -> int:
    """Write the noisy copies of a clean stack as a float32 stack at `path`: each shard drawn and written by
    a worker process (default: every core) that reads its own clean images. Returns the number of copies."""
    copies = 1 if config.levels.is_range else len(config.levels.values)
    sizes = [int(np.prod(clean.shape(k))) * copies * 4 for k in range(len(clean))]
    jobs = ((clean.subset(group), config) for group in shard_groups(sizes))
    return save_stack_parallel(path, jobs, _noisy_shard, np.float32, processes)


def add_noise_to_stack(clean: Stack, config: NoiseConfig) -> Stack:
    """noisy_stack(clean, config) in memory, in this process (for small stacks: test folders, tests)."""
    noisy = Stack()
    for entry, image in noisy_stack(clean, config):
        noisy.append(entry, image)
    return noisy
