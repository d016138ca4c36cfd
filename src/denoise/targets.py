"""What a training batch trains toward (train.target): `clean` (supervised: the clean patch) or
`neighbor2neighbor` (self-supervised, Huang et al. 2021: from noisy images alone).

Neighbor2Neighbor: every 2×2 cell of a noisy patch y gives two different, adjacent pixels; the pixels
picked first form the half-size image g1(y), the others g2(y). With independent zero-mean noise, g2(y) is a
noisy copy of (nearly) the same scene as g1(y), so a network f trained to map g1(y) to g2(y) learns to
denoise. A regularizer keeps f consistent with its own full-size output f̄(y) (no gradient through it):

    loss = ‖f(g1(y)) − g2(y)‖² + γ ‖f(g1(y)) − g2(y) − (g1(f̄(y)) − g2(f̄(y)))‖²       (γ = 2, as the paper)

Any network here (U-Net with or without the noise map, DnCNN) is the f; a wrapper model (training_model)
computes both terms in keras.ops, so the one training loop (fit()) trains it under any backend, and the
network alone is what gets saved. The pairs of pixels are drawn in NumPy with each batch (seeded by the
step) and fed as one-hot selectors; nothing here ever reads a clean pixel.

Refined targets (train.final.target: refined), after IDR (Zhang et al. CVPR 2022, "Self-supervised image
denoising via iterative data refinement"): for the last train.final.epochs, the network's own outputs of the
noisy training images x̂ = f(y), made anew at each epoch, serve as clean images, and the network trains as
a supervised one on x̂ plus fresh noise of the noise model → x̂. This assumes the noise model known (the noise
stage's type, at train.sampling.fresh_levels or the noise section's levels), as IDR does; it still reads
no clean pixel. It trains at full resolution, where Neighbor2Neighbor sees only half-size sub-images.
"""

from __future__ import annotations

import keras
import numpy as np

from .storage import Stack

GAMMA = 2.0
# the 8 ordered pairs of adjacent pixels of a 2×2 cell, as (first, second) positions 0 1 / 2 3
NEIGHBOURS = np.array([(0, 1), (1, 0), (0, 2), (2, 0), (1, 3), (3, 1), (2, 3), (3, 2)])


def draw_selectors(count: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """N×H/2×W/2×8 float32 one-hot selectors: [..., :4] the first pixel of each cell, [..., 4:] its neighbour."""
    pairs = NEIGHBOURS[rng.integers(0, len(NEIGHBOURS), (count, height // 2, width // 2))]
    eye = np.eye(4, dtype=np.float32)
    return np.concatenate([eye[pairs[..., 0]], eye[pairs[..., 1]]], axis=-1)


def subsample_numpy(images: np.ndarray, one_hot: np.ndarray) -> np.ndarray:
    """The half-size images whose pixel in each 2×2 cell is the one `one_hot` (N×H/2×W/2×4) picks."""
    n, h, w, c = images.shape
    cells = images[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, h // 2, w // 2, 4, c)
    return (cells * one_hot[..., None]).sum(axis=3).astype(np.float32)


@keras.saving.register_keras_serializable(package="denoise")
class Subsample(keras.layers.Layer):
    """subsample_numpy in keras.ops: (images N×H×W×C, one-hot N×H/2×W/2×4) -> N×H/2×W/2×C."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, images, one_hot):
        images, one_hot = keras.ops.cast(images, "float32"), keras.ops.cast(one_hot, "float32")
        shape = keras.ops.shape(one_hot)
        channels = images.shape[-1]
        cells = keras.ops.reshape(images, (-1, shape[1], 2, shape[2], 2, channels))
        cells = keras.ops.reshape(keras.ops.transpose(cells, (0, 1, 3, 2, 4, 5)), (-1, shape[1], shape[2], 4, channels))
        return keras.ops.sum(cells * one_hot[..., None], axis=3)


def training_model(network: keras.Model) -> keras.Model:
    """The wrapper fit() trains under neighbor2neighbor: inputs (noisy N×H×W×C, selectors N×H/2×W/2×8),
    output f(g1(y)) and g1(f̄(y)) − g2(f̄(y)) side by side on the channel axis (Neighbor2NeighborLoss splits them)."""
    channels = network.input_shape[-1]
    noisy = keras.Input((None, None, channels), name="noisy")
    selectors = keras.Input((None, None, 8), name="selectors")
    first, second = selectors[..., :4], selectors[..., 4:]
    full = keras.ops.stop_gradient(keras.ops.cast(network(noisy), "float32"))
    prediction = keras.ops.cast(network(Subsample()(noisy, first)), "float32")
    difference = Subsample()(full, first) - Subsample()(full, second)
    return keras.Model([noisy, selectors], keras.ops.concatenate([prediction, difference], axis=-1), name="neighbor2neighbor")


@keras.saving.register_keras_serializable(package="denoise")
class Neighbor2NeighborLoss(keras.losses.Loss):
    """y_true: g2(y); y_pred: training_model's output. The reconstruction term plus γ times the regularizer."""

    def __init__(self, gamma: float = GAMMA, name="neighbor2neighbor_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.gamma = gamma

    def __call__(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = keras.ops.cast(y_true, "float32"), keras.ops.cast(y_pred, "float32")
        channels = y_true.shape[-1]
        error = y_pred[..., :channels] - y_true
        return keras.ops.mean(keras.ops.square(error)) + self.gamma * keras.ops.mean(keras.ops.square(error - y_pred[..., channels:]))

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma}


def network_of(model: keras.Model) -> keras.Model:
    """The network inside a training_model wrapper (what a Neighbor2Neighbor checkpoint holds), else the model."""
    if model.name != "neighbor2neighbor":
        return model
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def refined(network, noisy: Stack) -> Stack:
    """The refined targets: the network's output for each noisy image (same entries), held in memory."""
    from . import inference

    return Stack(list(noisy.entries), [inference.predict_tiled(network, image) for image in noisy.images])


def neighbour_psnr(network, noisy_images, seed: int = 0) -> float:
    """Validation without clean pixels: the mean over images of the PSNR between f(g1(y)) and g2(y), with
    selectors fixed by `seed`. Higher is better (it tracks denoising: the noise of g2(y) is a floor)."""
    from . import inference

    rng, scores = np.random.default_rng(seed), []
    for image in noisy_images:
        h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
        one_hot = draw_selectors(1, h, w, rng)
        first = subsample_numpy(image[None, :h, :w], one_hot[..., :4])[0]
        second = subsample_numpy(image[None, :h, :w], one_hot[..., 4:])[0]
        out = inference.predict_tiled(network, first)
        scores.append(10 * np.log10(1.0 / max(float(np.mean((out - second) ** 2)), 1e-12)))
    return float(np.mean(scores))
