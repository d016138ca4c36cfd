"""Training batches in NumPy: random patches of the training images, one of the 8 flips and rotations
each, and fresh noise (or the noise stage's stored copies). Batch b is a function of the seed and b
alone, so an interrupted run that resumes at step b sees exactly the data it would have, under any
Keras backend and whatever the number of devices that share the batch."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor

import keras
import numpy as np
from PIL import Image

from .config import NOISE_LEVEL_KEYS, Levels, NoiseConfig, SamplingConfig, TrainConfig
from .errors import ConfigError
from .noise import add_noise, derive_seed, sample_levels
from .storage import Stack
from .targets import draw_selectors, subsample_numpy


def dihedral(patches: np.ndarray, flips: np.ndarray) -> np.ndarray:
    """Each square N×S×S×C patch flipped vertically, horizontally and transposed where flips[n] (N×3) says."""
    out = np.where(flips[:, 0, None, None, None], patches[:, ::-1], patches)
    out = np.where(flips[:, 1, None, None, None], out[:, :, ::-1], out)
    return np.where(flips[:, 2, None, None, None], out.transpose(0, 2, 1, 3), out)


def enlarge(patch: np.ndarray, size: int) -> np.ndarray:
    """An S×S×C patch enlarged to size×size (bicubic, each channel, clipped to [0, 1]); itself if already that size.
    A photo's own pixels are much smoother than a small scanned photo's: zooming training patches shows the
    network content at that scale (as SCUNet's and BSRGAN's data synthesis resize their images)."""
    if patch.shape[0] == size:
        return patch
    planes = [np.asarray(Image.fromarray(np.ascontiguousarray(patch[..., c]), "F").resize((size, size), Image.BICUBIC))
              for c in range(patch.shape[-1])]
    return np.clip(np.stack(planes, axis=-1), 0.0, 1.0).astype(np.float32)


class PatchSampler:
    """batch(step) -> (noisy, clean) float32 N×S×S×C arrays, with the sampling that train.sampling (and, for
    the last train.final.epochs, train.final) describes. Reads only the patches it cuts from the stacks.
    Under train.target neighbor2neighbor: ((noisy, selectors N×S/2×S/2×8), g2(noisy) N×S/2×S/2×C) from the
    noisy copies alone; no clean pixel is read (targets.py)."""

    def __init__(self, clean: Stack, noisy: Stack, config: TrainConfig, noise: NoiseConfig):
        self.config, self.noise = config, noise
        self.clean, self.noisy = clean, noisy
        index_of = {entry["name"]: k for k, entry in enumerate(clean.entries)}
        if config.sampling.fresh_noise:  # pairs of (clean image, stored noisy copy or None)
            self.pairs = [(k, None) for k in range(len(clean))]
            # each type's levels: fresh_levels (or the noise stage's) for noise.type, the noise section's for others
            self.types = config.sampling.noise_types or (noise.type,)
            self.levels: dict[str, Levels] = {name: getattr(noise, NOISE_LEVEL_KEYS[name]) for name in self.types}
            self.levels[noise.type] = config.sampling.fresh_levels or noise.levels
        else:
            self.pairs = [(index_of[e["name"]], k) for k, e in enumerate(noisy.entries) if e["name"] in index_of]
        self.sizes = np.array([clean.shape(c)[:2] for c, _ in self.pairs], np.int64).reshape(-1, 2)
        self.base = derive_seed("patches", config.seed)
        self.first_final = config.first_final_step if config.final_sampling != config.sampling else config.total_steps
        for phase, key in ((config.sampling, "sampling"), (config.final_sampling, "final")):
            if not (self.sizes.min(axis=1) >= phase.patch_size).any():
                raise ConfigError(f"train.{key}.patch_size: {phase.patch_size} is larger than every training image")

    def phase(self, step: int) -> SamplingConfig:
        return self.config.final_sampling if step >= self.first_final else self.config.sampling

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        phase = self.phase(step)
        size, count = phase.patch_size, phase.batch_size
        rng = np.random.default_rng([*self.base, step])
        eligible = np.flatnonzero(self.sizes.min(axis=1) >= size)  # pairs whose image holds a whole patch
        pick = eligible[rng.integers(0, len(eligible), count)]
        sides, kinds = np.full(count, size), None
        if phase.zoom:  # each clean patch (of the zoom_types) cut smaller by a drawn factor, enlarged back to the patch size
            kinds = rng.integers(0, len(self.types), count)
            zoomed = np.isin(np.asarray(self.types)[kinds], phase.zoom_types or self.types)
            factors = np.where(zoomed, sample_levels(phase.zoom, count, rng), 1.0)
            sides = np.clip(np.round(size / factors), 2, size).astype(np.int64)
        corner = (rng.random((count, 2)) * (self.sizes[pick] - sides[:, None] + 1)).astype(np.int64)
        flips = rng.integers(0, 2, (count, 3)).astype(bool)
        clean, noisy = [], []
        for pair, (top, left), side in zip(pick, corner, sides):
            c, n = self.pairs[pair]
            if not self.config.self_supervised:
                clean.append(enlarge(self.clean.patch(c, top, left, side), size))
            if n is not None:
                noisy.append(self.noisy.patch(n, top, left, size))
        if self.config.self_supervised:
            inputs = np.stack(noisy)
            inputs = dihedral(inputs, flips) if phase.augment else inputs
            selectors = draw_selectors(count, size, size, rng)
            return (inputs, selectors), subsample_numpy(inputs, selectors[..., 4:])
        target = np.stack(clean)
        if phase.augment:
            target = dihedral(target, flips)
        if phase.fresh_noise:
            return self.fresh_noise(target, rng, kinds), target
        inputs = np.stack(noisy)
        return (dihedral(inputs, flips) if phase.augment else inputs), target


    def fresh_noise(self, target: np.ndarray, rng: np.random.Generator, kind: np.ndarray | None = None) -> np.ndarray:
        """Noise for a batch of clean patches: one type (train.sampling.noise_types drawn per patch, or the index
        into them that `kind` gives) and level each."""
        if len(self.types) == 1:
            level = sample_levels(self.levels[self.types[0]], len(target), rng)[:, None, None, None]
            return add_noise(target, self.types[0], level, rng, self.noise.clip, self.noise.camera)
        kind = rng.integers(0, len(self.types), len(target)) if kind is None else kind
        noisy = np.empty_like(target)
        for k, name in enumerate(self.types):
            rows = np.flatnonzero(kind == k)
            if rows.size:
                level = sample_levels(self.levels[name], rows.size, rng)[:, None, None, None]
                noisy[rows] = add_noise(target[rows], name, level, rng, self.noise.clip, self.noise.camera)
        return noisy


def _flat(batch):
    (noisy, selectors), target = batch
    return noisy, selectors, target


@contextlib.contextmanager
def _environment(**values):
    """os.environ with `values` set, as it was afterwards."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_worker_sampler: PatchSampler | None = None  # in a batch worker process: its copy of the sampler


def _start_worker(sampler: PatchSampler) -> None:
    global _worker_sampler
    _worker_sampler = sampler


def _worker_batch(step: int):
    return _worker_sampler.batch(step)


class Batches(keras.utils.PyDataset):
    """Batches first_step … first_step + steps − 1 of a sampler, in order, as Keras's fit() takes them (with
    shuffle=False). Keras's own workers are not used: it restarts its pool at each epoch from the first index,
    which would repeat the first epoch's batches. With `workers` above 1 (train.workers) a pool of that many
    processes makes the next 2 × workers batches ahead of the step; batch b is sampler.batch(b) whichever
    process makes it, so the batches are the same arrays for any number of workers."""

    def __init__(self, sampler: PatchSampler, first_step: int, steps: int, part: tuple[int, int] = (0, 1), workers: int = 1):
        super().__init__(workers=1, use_multiprocessing=False)
        self.sampler, self.first_step, self.steps = sampler, first_step, steps
        self.part, self.parts = part
        self.workers, self._pool, self._ahead, self._lock = workers, None, {}, threading.Lock()

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int):
        """Batch first_step + index; in a run of several processes, this process's share of its rows (each
        process feeds its own devices), so that the global batch is the same whatever the process count."""
        batch = self._batch(self.first_step + index)
        if self.parts == 1:
            return batch
        rows = len(batch[1]) // self.parts
        return keras.tree.map_structure(lambda array: array[self.part * rows : (self.part + 1) * rows], batch)

    def _batch(self, step: int):
        if self.workers <= 1:
            return self.sampler.batch(step)
        # spawned, not forked: the parent may hold an accelerator's runtime and its threads; the workers start
        # (all of them, on the first submissions) with JAX on the CPU alone, so none of them takes the accelerator.
        # Keras asks from more than one thread at once, and not always in order: the lock keeps the bookkeeping whole.
        with self._lock, _environment(JAX_PLATFORMS="cpu"):
            if self._pool is None:
                self._pool = ProcessPoolExecutor(self.workers, multiprocessing.get_context("spawn"), initializer=_start_worker, initargs=(self.sampler,))
            for stale in [s for s in self._ahead if s < step - 2 * self.workers]:
                del self._ahead[stale]
            for ahead in range(step, min(step + 2 * self.workers, self.first_step + self.steps)):
                if ahead not in self._ahead:
                    self._ahead[ahead] = self._pool.submit(_worker_batch, ahead)
            future = self._ahead.pop(step, None) or self._pool.submit(_worker_batch, step)
        return future.result()

    def close(self) -> None:
        """Stop the worker processes (if any); fit() is done with these batches."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool, self._ahead = None, {}

    def __del__(self):
        self.close()


def batches(sampler: PatchSampler, first_step: int, steps: int, part: tuple[int, int] = (0, 1), workers: int = 1):
    """fit()'s input for batches first_step … first_step + steps − 1, all of one phase: under TensorFlow a
    tf.data pipeline that runs the NumPy sampler in its threads ahead of the step, with static shapes (45–51
    against 55–60 ms a step for Keras's PyDataset on this CPU: docs/accelerators.md); elsewhere the PyDataset."""
    data = Batches(sampler, first_step, steps, part, workers)
    if keras.backend.backend() != "tensorflow":
        return data
    import tensorflow as tf

    phase = sampler.phase(first_step)
    assert phase == sampler.phase(first_step + steps - 1), "one phase per call"
    rows, size, channels = phase.batch_size // part[1], phase.patch_size, sampler.clean.shape(0)[-1]
    shape = [rows, size, size, channels]

    def make(index):
        if sampler.config.self_supervised:
            noisy, selectors, target = tf.numpy_function(lambda k: _flat(data[int(k)]), [index], [tf.float32] * 3, stateful=False)
            noisy.set_shape(shape)
            selectors.set_shape([rows, size // 2, size // 2, 8])
            target.set_shape([rows, size // 2, size // 2, channels])
            return (noisy, selectors), target
        noisy, clean = tf.numpy_function(lambda k: data[int(k)], [index], [tf.float32, tf.float32], stateful=False)
        noisy.set_shape(shape)
        clean.set_shape(shape)
        return noisy, clean

    # several batches in flight: on a data set larger than the page cache each patch is a disk read, and reads
    # release the interpreter lock, so they overlap with each other and with the step
    return tf.data.Dataset.range(steps).map(make, num_parallel_calls=8, deterministic=True).prefetch(8)
