"""Training losses, written in keras.ops only: they run under any Keras backend."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="denoise")
class PSNRLoss(keras.losses.Loss):
    """The geometric mean over the batch of each patch's √(MSE + floor²): minimizing it maximizes the
    mean of the patches' PSNRs, as the benchmark averages PSNR over images. Pooled MSE (and √MSE) is
    dominated by the noisiest patches of a blind batch; this weighs each patch by 1 / its error, so
    low noise levels count as much in dB as high ones. The floor (2/255) keeps near-clean patches
    from taking over. Its gradients are of L1's size, so a switch from L1 keeps Adam's step sizes."""

    FLOOR = 2 / 255

    def __init__(self, name="psnr_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def __call__(self, y_true, y_pred, sample_weight=None):
        squares = keras.ops.square(keras.ops.cast(y_pred, "float32") - keras.ops.cast(y_true, "float32"))
        per_patch = keras.ops.mean(keras.ops.reshape(squares, (keras.ops.shape(squares)[0], -1)), axis=1)
        log_rmse = 0.5 * keras.ops.log(per_patch + self.FLOOR**2)
        return keras.ops.exp(keras.ops.mean(log_rmse))


LOSSES = {
    "bce": keras.losses.BinaryCrossentropy,
    "mse": keras.losses.MeanSquaredError,
    "l1": keras.losses.MeanAbsoluteError,
    "psnr": PSNRLoss,
}


def get_loss(name: str) -> keras.losses.Loss:
    """The loss that params.yaml calls `name` (config.LOSSES lists the names)."""
    return LOSSES[name]()
