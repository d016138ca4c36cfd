"""Training losses, written in keras.ops only: they run under any Keras backend (the GPU run in
bench/gpu_train.py uses JAX), and TensorFlow is imported only where the pipeline trains."""

from __future__ import annotations

import keras


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


def get_loss(name: str) -> keras.losses.Loss:
    """The loss that params.yaml calls `name` (config.LOSSES lists the names)."""
    return LOSSES[name]()
