"""Inference, the one path that evaluation, the benchmarks, training's validation and the `denoise`
command share: loading a model safely; padding an image to what the model needs and cropping back;
overlapping tiles blended with a smooth window, so memory is bounded by the tile size and no seam
shows; batching tiles; the self-ensemble (the mean of the outputs for flipped and rotated copies of
the input); and the conversion between an image's channels and the model's (Denoiser). A "model" here is
a loaded Keras model, a model file, or an engine (engines.py: Keras, ONNX Runtime, OpenVINO, LiteRT)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .config import ENSEMBLE_SIZES
from .engines import open_engine
from .errors import DenoiseError


def load_model(path: str | Path):
    """Load a .keras model in Keras's safe mode: a file that carries Python code is refused."""
    import keras

    from . import models  # noqa: F401 - registers the package's own layers (NoiseLevelMap) for loading

    path = Path(path)
    if not path.is_file():
        raise DenoiseError(f"{path}: no model there; run `make repro` (or `dvc repro`) first to train one")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DenoiseError(f"{path}: cannot load model ({reason})") from None


def _padded_size(length: int, multiple: int) -> int:
    return math.ceil(length / multiple) * multiple


def _pad_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    """Mirror-pad the bottom and right edges so that both sides are multiples of `multiple`."""
    height, width = image.shape[:2]
    pad = ((0, _padded_size(height, multiple) - height), (0, _padded_size(width, multiple) - width), (0, 0))
    return np.pad(image, pad, mode="symmetric")


# (quarter turns, then a left-right flip): the eight symmetries of a square, those that keep an
# image's shape first, so that 2 or 4 views reuse one traced function per image size.
VIEWS = ((0, False), (2, False), (0, True), (2, True), (1, False), (3, False), (1, True), (3, True))


def _view(image: np.ndarray, turns: int, flip: bool) -> np.ndarray:
    image = np.rot90(image, turns)
    return np.ascontiguousarray(image[:, ::-1] if flip else image)


def _unview(image: np.ndarray, turns: int, flip: bool) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(image[:, ::-1] if flip else image, -turns))


def views(denoise, image: np.ndarray, count: int) -> list[np.ndarray]:
    """denoise(view) for the first `count` VIEWS of an H×W×C image, each turned back to the image's
    orientation. Their mean is the self-ensemble (Timofte et al. 2016): a network's errors differ
    between flipped and rotated copies of its input, so averaging them cancels part of the error."""
    if count not in ENSEMBLE_SIZES:
        raise ValueError(f"self-ensemble size {count!r}: one of {ENSEMBLE_SIZES}")
    return [_unview(denoise(_view(image, *view)), *view) for view in VIEWS[:count]]


def mean_of_views(outputs: list[np.ndarray]) -> np.ndarray:
    return outputs[0] if len(outputs) == 1 else np.mean(outputs, axis=0)


def self_ensemble(denoise, image: np.ndarray, count: int) -> np.ndarray:
    """The mean of views(denoise, image, count); count 1 is a single pass."""
    return mean_of_views(views(denoise, image, count))


def _predict_once(engine, image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    return engine(_pad_to_multiple(image, engine.multiple)[None])[0, :height, :width]


def predict(model, image: np.ndarray, ensemble: int = 1) -> np.ndarray:
    """Denoise one H×W×C image in a single pass, or as the mean of `ensemble` flipped/rotated passes."""
    engine = open_engine(model)
    return self_ensemble(lambda view: _predict_once(engine, view), image, ensemble)


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def _window(tile: int, overlap: int) -> np.ndarray:
    """1-D blending weights. Over each overlap, the first third is weight 0 (those pixels see the
    tile's padding), the middle third a raised-cosine crossfade, the last third weight 1, so two
    neighbours' weights sum to 1 and no output pixel depends on a tile edge."""
    overlap = min(overlap, tile)  # a side with a single tile (shorter than the overlap) gets weight 1 anyway
    margin = overlap // 3
    fade = overlap - 2 * margin
    ramp = np.concatenate([np.zeros(margin), 0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade), np.ones(margin)])
    weights = np.ones(tile, dtype=np.float32)
    weights[:overlap] = ramp
    weights[tile - overlap :] = np.minimum(weights[tile - overlap :], ramp[::-1])
    return weights


def tile_grid(height: int, width: int, tile: int, overlap: int, multiple: int) -> tuple[tuple[int, int], int, list[tuple[int, int]]]:
    """The tile shape, the overlap, and the top-left corner of every tile over the image padded to a
    multiple of `multiple`. Tile sides and steps are multiples of it too, so every tile sees the pixel
    grid of a whole-image pass (a strided network is not shift-invariant)."""
    tile = max(multiple, tile // multiple * multiple)
    step = max(multiple, (tile - min(overlap, tile // 2)) // multiple * multiple)
    height, width = _padded_size(height, multiple), _padded_size(width, multiple)
    shape = (min(tile, height), min(tile, width))
    return shape, tile - step, [(y, x) for y in _starts(height, shape[0], step) for x in _starts(width, shape[1], step)]


def predict_tiled(model, image: np.ndarray, tile: int = 512, overlap: int = 64, batch_size: int = 4, progress=None) -> np.ndarray:
    """Denoise one H×W×C image tile by tile; equals `predict` up to the network's edge effects.

    `overlap` should be at least three times the network's receptive-field radius. `progress`, if given, is called
    with the number of tiles done after each batch.
    """
    engine = open_engine(model)
    height, width, channels = image.shape
    if height <= tile and width <= tile:
        return predict(engine, image)
    multiple = engine.multiple
    (tile_h, tile_w), overlap, positions = tile_grid(height, width, tile, overlap, multiple)
    padded = _pad_to_multiple(image, multiple)
    full_h, full_w = padded.shape[:2]
    window_h, window_w = _window(tile_h, overlap), _window(tile_w, overlap)
    total = np.zeros((full_h, full_w, channels), np.float32)
    weight = np.zeros((full_h, full_w, 1), np.float32)
    for first in range(0, len(positions), batch_size):
        chunk = positions[first : first + batch_size]
        tiles = np.stack([padded[y : y + tile_h, x : x + tile_w] for y, x in chunk])
        for (y, x), out in zip(chunk, engine(tiles)):
            wy = window_h if y > 0 else np.maximum(window_h, np.arange(tile_h) < overlap)
            wx = window_w if x > 0 else np.maximum(window_w, np.arange(tile_w) < overlap)
            if y + tile_h >= full_h:
                wy = np.maximum(wy, np.arange(tile_h) >= tile_h - overlap)
            if x + tile_w >= full_w:
                wx = np.maximum(wx, np.arange(tile_w) >= tile_w - overlap)
            blend = (wy[:, None] * wx[None, :])[..., None]
            total[y : y + tile_h, x : x + tile_w] += out * blend
            weight[y : y + tile_h, x : x + tile_w] += blend
        if progress:
            progress(len(chunk))
    return (total / weight)[:height, :width]


class Denoiser:
    """A loaded model with its tiling and self-ensemble settings, and the conversions between an image's
    channels and the model's: a gray model cleans a color image channel by channel; a color model
    cleans a gray image as RGB with equal channels, averaged back to gray."""

    def __init__(self, model, tile: int = 512, overlap: int = 64, batch: int = 4, ensemble: int = 1, engine: str = "auto",
                 sigma: float | None = None):
        self.engine = open_engine(model, engine)
        # strength control: a model with a noise-level map, run by Keras, denoises for the level it is told
        self.sigma_applied = False
        if sigma is not None and self.engine.name == "keras":
            from .models import set_noise_level

            self.sigma_applied = set_noise_level(self.engine.model, sigma)
        self.channels = self.engine.channels
        if self.channels not in (1, 3):
            raise DenoiseError(f"{model}: the model takes {self.channels} channels; only gray (1) or RGB (3) models can be used")
        if ensemble not in ENSEMBLE_SIZES:
            raise DenoiseError(f"self-ensemble size {ensemble!r}: one of {ENSEMBLE_SIZES}")
        self.tile, self.overlap, self.batch, self.ensemble = tile, overlap, batch, ensemble
        self.notes: set[str] = set()

    def __call__(self, pixels: np.ndarray, progress=None) -> np.ndarray:
        def run(image):
            return self_ensemble(lambda view: predict_tiled(self.engine, view, self.tile, self.overlap, self.batch, progress), image, self.ensemble)

        if pixels.shape[-1] == self.channels:
            return run(pixels)
        if self.channels == 1:
            self.notes.add("gray model on a color image: each channel is denoised on its own")
            return np.concatenate([run(pixels[..., c : c + 1]) for c in range(pixels.shape[-1])], axis=-1)
        self.notes.add("color model on a gray image: denoised as RGB with equal channels, then averaged back to gray")
        return run(np.repeat(pixels, 3, axis=-1)).mean(axis=-1, keepdims=True)

    def tiles_for(self, pixels: np.ndarray) -> int:
        """How many tiles __call__ will run for this image (for a progress bar)."""
        height, width, channels = pixels.shape

        def tiles(h: int, w: int) -> int:
            return 1 if h <= self.tile and w <= self.tile else len(tile_grid(h, w, self.tile, self.overlap, self.engine.multiple)[2])

        per_plane = sum(tiles(height, width) if turns % 2 == 0 else tiles(width, height) for turns, _ in VIEWS[: self.ensemble])
        return per_plane * (channels if self.channels == 1 and channels != 1 else 1)
