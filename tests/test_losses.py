import numpy as np
import pytest

from denoise import config, losses


def test_every_loss_params_accept_is_implemented():
    # config.LOSSES validates params.yaml without importing Keras; losses.LOSSES builds them
    assert list(losses.LOSSES) == list(config.LOSSES)


@pytest.mark.parametrize("name", config.LOSSES)
def test_losses_grow_away_from_the_target(name):
    target = np.array([[0.2, 0.7]], np.float32)
    loss = losses.get_loss(name)
    assert float(loss(target, target + 0.1)) > float(loss(target, target))


def test_psnr_loss_weighs_each_patch_by_its_own_error():
    import tensorflow as tf
    rng = np.random.default_rng(0)
    target = tf.constant(rng.random((2, 8, 8, 1)), tf.float32)
    # patch 0 is 5× further off than patch 1 (both well above the 2/255 floor)
    offsets = np.stack([0.2 * rng.standard_normal((8, 8, 1)), 0.04 * rng.standard_normal((8, 8, 1))]).astype(np.float32)
    estimate = tf.Variable(target + offsets)
    psnr_loss = losses.get_loss("psnr")

    def rmse(target, estimate):  # pooled √MSE over the batch, for comparison
        return tf.sqrt(tf.reduce_mean(tf.square(estimate - target)))

    per_patch = np.sqrt(np.mean(offsets.reshape(2, -1) ** 2, axis=1) + (2 / 255) ** 2)
    assert float(psnr_loss(target, estimate)) == pytest.approx(float(np.sqrt(per_patch.prod())), rel=1e-4)
    gradients = {}
    for name, loss in (("psnr", psnr_loss), ("rmse", rmse)):
        with tf.GradientTape() as tape:
            value = loss(target, estimate)
        gradient = tape.gradient(value, estimate).numpy()
        gradients[name] = np.linalg.norm(gradient.reshape(2, -1), axis=1)
    # pooled √MSE pulls hardest on the worse patch (in proportion to its error); the PSNR loss counts
    # relative error, so the 5× better patch gets about 5× the pull
    assert gradients["rmse"][0] / gradients["rmse"][1] > 4
    assert 0.1 < gradients["psnr"][0] / gradients["psnr"][1] < 0.3
    assert 0.3 < np.linalg.norm(gradients["psnr"]) / np.linalg.norm(gradients["rmse"]) < 3
