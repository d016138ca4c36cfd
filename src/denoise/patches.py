"""Training batches cut on the fly with tf.data: random patches, flips and rotations, and
optionally fresh noise per batch, all stateless so that any batch can be recreated from its number."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from . import images
from .config import Levels, NoiseConfig, SamplingConfig, TrainConfig
from .errors import ConfigError
from .noise import add_noise, derive_seed, sample_levels
from .storage import Stack


def _dihedral(batch: tf.Tensor, seed) -> tf.Tensor:
    """Apply one of the 8 flips/90° rotations to each square patch, chosen per patch."""
    flips = tf.random.stateless_uniform([3, tf.shape(batch)[0]], seed, 0, 2, dtype=tf.int32) > 0
    mask = lambda m: m[:, None, None, None]  # noqa: E731
    batch = tf.where(mask(flips[0]), tf.reverse(batch, [1]), batch)
    batch = tf.where(mask(flips[1]), tf.reverse(batch, [2]), batch)
    return tf.where(mask(flips[2]), tf.transpose(batch, [0, 2, 1, 3]), batch)


def patch_batches(clean: Stack, noisy: Stack, config: TrainConfig, noise: NoiseConfig, first_step: int, steps: int) -> tf.data.Dataset:
    """(noisy, clean) batches number first_step … first_step+steps-1. Batch b depends only on the
    seed and b, so an interrupted run that resumes at step b sees exactly the data it would have.
    The last config.final.epochs epochs are cut as config.final_sampling says (their own patch and batch size)."""
    sampling = config.sampling
    index_of = {entry["name"]: k for k, entry in enumerate(clean.entries)}
    clean_images = tf.constant(images.padded_batch(clean.images))
    if sampling.fresh_noise:
        pair_clean = np.arange(len(clean.images))
        levels: Levels = sampling.fresh_levels or noise.levels
    else:
        kept = [k for k, entry in enumerate(noisy.entries) if entry["name"] in index_of]
        pair_clean = np.array([index_of[noisy.entries[k]["name"]] for k in kept], int)
        pair_source = tf.constant(images.padded_batch([noisy.images[k] for k in kept]))
    pair_sizes = np.array([clean.images[c].shape[:2] for c in pair_clean], np.int32).reshape(-1, 2)
    sizes = tf.constant(pair_sizes)
    pair_clean = tf.constant(pair_clean, tf.int32)
    base = tf.constant(derive_seed("patches", config.seed), tf.int64)

    def batch_maker(phase: SamplingConfig, size_key: str):
        size, batch_size = phase.patch_size, phase.batch_size
        eligible = np.flatnonzero(pair_sizes.min(axis=1) >= size)  # pairs whose image holds a whole patch
        if not len(eligible):
            raise ConfigError(f"{size_key}: {size} is larger than every training image")
        eligible = tf.constant(eligible, tf.int32)
        offsets = tf.range(size)

        def make_batch(step):
            seeds = tf.random.experimental.stateless_split(tf.stack([base[0], step]), 5)
            pick = tf.gather(eligible, tf.random.stateless_uniform([batch_size], seeds[0], 0, len(eligible), dtype=tf.int32))
            room = tf.cast(tf.gather(sizes, pick) - size + 1, tf.float32)
            corner = tf.cast(tf.random.stateless_uniform([batch_size, 2], seeds[1]) * room, tf.int32)
            rows = corner[:, 0, None, None] + offsets[None, :, None]
            cols = corner[:, 1, None, None] + offsets[None, None, :]
            rows, cols = tf.broadcast_to(rows, [batch_size, size, size]), tf.broadcast_to(cols, [batch_size, size, size])
            which = tf.broadcast_to(pick[:, None, None], tf.shape(rows))
            both = tf.gather_nd(clean_images, tf.stack([tf.gather(pair_clean, which), rows, cols], -1))
            if not sampling.fresh_noise:
                source = tf.gather_nd(pair_source, tf.stack([which, rows, cols], -1))
                both = tf.concat([both, source], -1)
            if sampling.augment:
                both = _dihedral(both, seeds[2])
            channels = clean_images.shape[-1]
            target = both[..., :channels]
            if sampling.fresh_noise:
                level = sample_levels(levels, batch_size, seeds[3])[:, None, None, None]
                return add_noise(target, noise.type, level, seeds[4], noise.clip), target
            return both[..., channels:], target

        return make_batch

    end = first_step + steps
    final = config.final_sampling
    first_final = end if final == sampling else config.first_final_step
    phases = [(sampling, "train.sampling.patch_size", first_step, min(first_final, end)),
              (final, "train.final.patch_size", max(first_step, first_final), end)]
    parts = [tf.data.Dataset.range(begin, stop).map(batch_maker(phase, key), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
             for phase, key, begin, stop in phases if stop > begin]
    data = parts[0]
    for part in parts[1:]:
        data = data.concatenate(part)
    return data.prefetch(tf.data.AUTOTUNE)
