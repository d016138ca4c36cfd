"""Losses for training and the DnCNN-protocol quality metrics for evaluation."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def _squared_errors(y_true, y_pred):
    return keras.ops.square(keras.ops.cast(y_pred, "float32") - keras.ops.cast(y_true, "float32"))


@keras.saving.register_keras_serializable(package="denoise")
class RootMeanSquaredError(keras.losses.Loss):
    """√(mean squared error) over the batch: MSE's minimizer (what PSNR rewards) with gradients of L1's
    size, so that a switch from L1 keeps Adam's step sizes instead of shrinking them ~25-fold."""

    def __init__(self, name="root_mean_squared_error", **kwargs):
        super().__init__(name=name, **kwargs)

    def __call__(self, y_true, y_pred, sample_weight=None):
        squares = _squared_errors(y_true, y_pred)
        if sample_weight is not None:
            weights = keras.ops.cast(sample_weight, "float32")
            while len(weights.shape) < len(squares.shape):
                weights = keras.ops.expand_dims(weights, -1)
            squares = squares * weights
        return keras.ops.sqrt(keras.ops.mean(squares) + 1e-12)


@keras.saving.register_keras_serializable(package="denoise")
class PSNRLoss(keras.losses.Loss):
    """The geometric mean over the batch of each patch's √(MSE + floor²): minimizing it maximizes the
    mean of the patches' PSNRs, as the benchmark averages PSNR over images. Pooled MSE (and √MSE) is
    dominated by the noisiest patches of a blind batch; this weighs each patch by 1 / its error, so
    low noise levels count as much in dB as high ones. The floor (2/255) keeps near-clean patches
    from taking over. Its gradients are of L1's size, as √MSE's, so a switch keeps Adam's step sizes."""

    FLOOR = 2 / 255

    def __init__(self, name="psnr_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def __call__(self, y_true, y_pred, sample_weight=None):
        squares = _squared_errors(y_true, y_pred)
        per_patch = keras.ops.mean(keras.ops.reshape(squares, (keras.ops.shape(squares)[0], -1)), axis=1)
        log_rmse = 0.5 * keras.ops.log(per_patch + self.FLOOR**2)
        if sample_weight is not None:
            weights = keras.ops.reshape(keras.ops.cast(sample_weight, "float32"), (-1,))
            return keras.ops.exp(keras.ops.sum(log_rmse * weights) / keras.ops.sum(weights))
        return keras.ops.exp(keras.ops.mean(log_rmse))


LOSSES = {
    "bce": keras.losses.BinaryCrossentropy,
    "mse": keras.losses.MeanSquaredError,
    "l1": keras.losses.MeanAbsoluteError,
    "rmse": RootMeanSquaredError,
    "psnr": PSNRLoss,
}


@keras.saving.register_keras_serializable(package="denoise")
class PhasedLoss(keras.losses.Loss):
    """`first` until a callback (FinalLoss) sets `use_final`, then `final`."""

    def __init__(self, first: str, final: str, name="phased_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.first_name, self.final_name = first, final
        self.first, self.final = get_loss(first), get_loss(final)
        self.use_final = tf.Variable(False, trainable=False, name="use_final_loss")

    def __call__(self, y_true, y_pred, sample_weight=None):
        return tf.cond(self.use_final, lambda: self.final(y_true, y_pred, sample_weight), lambda: self.first(y_true, y_pred, sample_weight))

    def get_config(self):
        return {"name": self.name, "first": self.first_name, "final": self.final_name}


def get_loss(name: str, final: str | None = None) -> keras.losses.Loss:
    """The loss called `name`, or with `final`, a PhasedLoss that turns from it to `final`."""
    return PhasedLoss(name, final) if final else LOSSES[name]()


def to_8bit(image: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and round to the 0–255 scale (as floats), as the DnCNN protocol measures."""
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.float32)


def psnr(clean: np.ndarray, estimate: np.ndarray) -> float:
    """PSNR in dB on the 8-bit scale, after clipping and rounding both images."""
    return float(tf.image.psnr(to_8bit(clean), to_8bit(estimate), max_val=255.0))


def ssim(clean: np.ndarray, estimate: np.ndarray) -> float:
    """SSIM (Gaussian window 11, σ 1.5, as tf.image) on the 8-bit scale, averaged over channels."""
    return float(tf.image.ssim(to_8bit(clean), to_8bit(estimate), max_val=255.0))
