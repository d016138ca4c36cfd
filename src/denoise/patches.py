"""Training batches cut on the fly with tf.data: random patches, flips and rotations, and
optionally fresh noise per batch, all stateless so that any batch can be recreated from its number."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from . import images
from .config import Levels, NoiseConfig, TrainConfig
from .errors import ConfigError
from .noise import add_noise, derive_seed, sample_levels
from .storage import Stack


NOISE_WEIGHT_SCALE = 25 / 255  # weight 1 for a patch with noise σ 25 (8-bit), 6 for one without noise


def _dihedral(batch: tf.Tensor, seed) -> tf.Tensor:
    """Apply one of the 8 flips/90° rotations to each square patch, chosen per patch."""
    flips = tf.random.stateless_uniform([3, tf.shape(batch)[0]], seed, 0, 2, dtype=tf.int32) > 0
    mask = lambda m: m[:, None, None, None]  # noqa: E731
    batch = tf.where(mask(flips[0]), tf.reverse(batch, [1]), batch)
    batch = tf.where(mask(flips[1]), tf.reverse(batch, [2]), batch)
    return tf.where(mask(flips[2]), tf.transpose(batch, [0, 2, 1, 3]), batch)


def _texture_sums(images_: list[np.ndarray]) -> np.ndarray:
    """Summed-area tables of each image's texture: |horizontal| + |vertical| difference to the next
    pixel (0 past the image's last row and column), averaged over channels, zero-padded as images.padded_batch."""
    maps = []
    for image in images_:
        texture = np.zeros((*image.shape[:2], 1), np.float32)
        texture[:, :-1] += np.abs(np.diff(image, axis=1)).mean(-1, keepdims=True)
        texture[:-1] += np.abs(np.diff(image, axis=0)).mean(-1, keepdims=True)
        maps.append(texture)
    sums = images.padded_batch(maps)[..., 0].cumsum(1, dtype=np.float64).cumsum(2)
    return np.pad(sums, ((0, 0), (1, 0), (1, 0)))


def _most_textured(sums, image_index, pick, corner, size: int, keep: int):
    """Of each consecutive group of len(pick) // keep candidate patches, the one whose clean content
    varies most (summed texture, four look-ups in the summed-area table): flat patches are learned
    early, while texture and edges are what is left to learn late in a run, and what BM3D does best."""
    top, left = corner[:, 0], corner[:, 1]
    at = lambda y, x: tf.gather_nd(sums, tf.stack([image_index, y, x], -1))  # noqa: E731
    texture = at(top + size, left + size) - at(top, left + size) - at(top + size, left) + at(top, left)
    groups = tf.shape(pick)[0] // keep
    chosen = tf.argmax(tf.reshape(texture, [keep, groups]), axis=1, output_type=tf.int32) + tf.range(keep) * groups
    return tf.gather(pick, chosen), tf.gather(corner, chosen)


def patch_batches(clean: Stack, noisy: Stack, config: TrainConfig, noise: NoiseConfig, first_step: int, steps: int) -> tf.data.Dataset:
    """(noisy, clean) batches number first_step … first_step+steps-1. Batch b depends only on the
    seed and b, so an interrupted run that resumes at step b sees exactly the data it would have.
    The last config.final_epochs epochs are cut as config.final_phase says (their own patch and batch size)."""
    if config.scales != (1.0,):  # each image at each scale, as DnCNN's training set (validated: fresh noise only)
        clean = Stack([{**e, "name": f"{e['name']}@{s:g}"} for e in clean.entries for s in config.scales],
                      [images.rescale(image, s) for image in clean.images for s in config.scales])
    index_of = {entry["name"]: k for k, entry in enumerate(clean.entries)}
    clean_images = tf.constant(images.padded_batch(clean.images))
    if config.fresh_noise:
        pair_clean = np.arange(len(clean.images))
        pair_source = clean_images
        levels: Levels = config.fresh_levels or noise.levels
    else:
        kept = [k for k, entry in enumerate(noisy.entries) if entry["name"] in index_of]
        pair_clean = np.array([index_of[noisy.entries[k]["name"]] for k in kept], int)
        pair_source = tf.constant(images.padded_batch([noisy.images[k] for k in kept]))
    pair_sizes = np.array([clean.images[c].shape[:2] for c in pair_clean], np.int32).reshape(-1, 2)
    sizes = tf.constant(pair_sizes)
    pair_clean = tf.constant(pair_clean, tf.int32)
    base = tf.constant(derive_seed("patches", config.seed), tf.int64)
    if config.patch_candidates > 1:
        texture_sums = tf.constant(_texture_sums(clean.images))

    def batch_maker(phase: TrainConfig, size_key: str):
        size, batch_size = phase.patch_size, phase.batch_size
        eligible = np.flatnonzero(pair_sizes.min(axis=1) >= size)  # pairs whose image holds a whole patch
        if not len(eligible):
            raise ConfigError(f"{size_key}: {size} is larger than every training image")
        eligible = tf.constant(eligible, tf.int32)
        offsets = tf.range(size)
        candidates = batch_size * config.patch_candidates

        def make_batch(step):
            seeds = tf.random.experimental.stateless_split(tf.stack([base[0], step]), 5)
            pick = tf.gather(eligible, tf.random.stateless_uniform([candidates], seeds[0], 0, len(eligible), dtype=tf.int32))
            room = tf.cast(tf.gather(sizes, pick) - size + 1, tf.float32)
            corner = tf.cast(tf.random.stateless_uniform([candidates, 2], seeds[1]) * room, tf.int32)
            if config.patch_candidates > 1:
                pick, corner = _most_textured(texture_sums, tf.gather(pair_clean, pick), pick, corner, size, batch_size)
            rows = corner[:, 0, None, None] + offsets[None, :, None]
            cols = corner[:, 1, None, None] + offsets[None, None, :]
            rows, cols = tf.broadcast_to(rows, [batch_size, size, size]), tf.broadcast_to(cols, [batch_size, size, size])
            which = tf.broadcast_to(pick[:, None, None], tf.shape(rows))
            both = tf.gather_nd(clean_images, tf.stack([tf.gather(pair_clean, which), rows, cols], -1))
            if not config.fresh_noise:
                source = tf.gather_nd(pair_source, tf.stack([which, rows, cols], -1))
                both = tf.concat([both, source], -1)
            if config.augment:
                both = _dihedral(both, seeds[2])
            channels = clean_images.shape[-1]
            target = both[..., :channels]
            if config.fresh_noise:
                level = sample_levels(levels, batch_size, seeds[3])[:, None, None, None]
                inputs = add_noise(target, noise.type, level, seeds[4], noise.clip)
            else:
                inputs = both[..., channels:]
            if config.weight_by_noise:  # L1 error grows with the noise: without this, the noisiest patches dominate
                noise_std = tf.math.reduce_std(inputs - target, axis=[1, 2, 3])
                return inputs, target, (NOISE_WEIGHT_SCALE / (noise_std + NOISE_WEIGHT_SCALE / 6))[:, None, None]  # per pixel
            return inputs, target

        return make_batch

    end = first_step + steps
    final = config.final_phase
    first_final = end if final == config else (config.epochs - config.final_epochs) * config.steps_per_epoch
    phases = [(config, "train.patch_size", first_step, min(first_final, end)), (final, "train.final_patch_size", max(first_step, first_final), end)]
    parts = [tf.data.Dataset.range(begin, stop).map(batch_maker(phase, key), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
             for phase, key, begin, stop in phases if stop > begin]
    data = parts[0]
    for part in parts[1:]:
        data = data.concatenate(part)
    return data.prefetch(tf.data.AUTOTUNE)
