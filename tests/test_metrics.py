import numpy as np
import pytest

from denoise import config, metrics


def test_psnr_matches_a_hand_computed_value():
    clean = np.zeros((4, 4, 1), np.float32)
    estimate = clean.copy()
    estimate[0, 0, 0] = 16 / 255  # one pixel off by 16 levels: MSE = 256 / 16 = 16
    assert metrics.psnr(clean, estimate) == pytest.approx(10 * np.log10(255**2 / 16), abs=1e-4)


def test_psnr_clips_and_rounds_to_8_bit():
    clean = np.full((8, 8, 1), 0.5, np.float32)
    assert metrics.psnr(clean, clean + 0.1 / 255) == np.inf  # rounds to the same 8-bit values
    assert metrics.psnr(np.ones_like(clean), np.ones_like(clean) + 5) == np.inf  # clipped


def test_noisier_input_scores_lower(smooth_image):
    clean = smooth_image(64, 64)
    rng = np.random.default_rng(0)
    scores = [metrics.psnr(clean, clean + rng.normal(0, s / 255, clean.shape)) for s in (5, 15, 25, 50)]
    ssims = [metrics.ssim(clean, clean + rng.normal(0, s / 255, clean.shape)) for s in (5, 15, 25, 50)]
    assert scores == sorted(scores, reverse=True) and ssims == sorted(ssims, reverse=True)
    assert metrics.ssim(clean, clean) == pytest.approx(1.0)


def test_every_loss_params_accept_is_implemented():
    # config.LOSSES validates params.yaml without importing Keras; metrics.LOSSES builds them
    assert list(metrics.LOSSES) == list(config.LOSSES)


@pytest.mark.parametrize("name", config.LOSSES)
def test_losses_grow_away_from_the_target(name):
    target = np.array([[0.2, 0.7]], np.float32)
    loss = metrics.get_loss(name)
    assert float(loss(target, target + 0.1)) > float(loss(target, target))


def test_rmse_is_the_root_of_mse_with_gradients_of_l1s_size():
    import tensorflow as tf
    rng = np.random.default_rng(0)
    target = tf.constant(rng.random((2, 8, 8, 1)), tf.float32)
    estimate = tf.Variable(target + 0.02 * rng.standard_normal((2, 8, 8, 1)).astype(np.float32))
    rmse, mse, l1 = (metrics.get_loss(n) for n in ("rmse", "mse", "l1"))
    assert float(rmse(target, estimate)) == pytest.approx(float(mse(target, estimate)) ** 0.5, rel=1e-4)
    norms = {}
    for name, loss in (("rmse", rmse), ("mse", mse), ("l1", l1)):
        with tf.GradientTape() as tape:
            value = loss(target, estimate)
        norms[name] = float(tf.norm(tape.gradient(value, estimate)))
    assert 0.5 < norms["rmse"] / norms["l1"] < 2 and norms["mse"] < norms["l1"] / 10


def test_a_phased_loss_switches_and_survives_saving():
    import keras
    target = np.zeros((1, 4, 4, 1), np.float32)
    estimate = np.full((1, 4, 4, 1), 0.1, np.float32)
    phased = metrics.get_loss("l1", "mse")
    assert float(phased(target, estimate)) == pytest.approx(0.1)
    phased.use_final.assign(True)
    assert float(phased(target, estimate)) == pytest.approx(0.01)
    again = keras.losses.deserialize(keras.losses.serialize(phased))
    assert isinstance(again, metrics.PhasedLoss) and (again.first_name, again.final_name) == ("l1", "mse")


def test_psnr_loss_weighs_each_patch_by_its_own_error():
    import tensorflow as tf
    rng = np.random.default_rng(0)
    target = tf.constant(rng.random((2, 8, 8, 1)), tf.float32)
    # patch 0 is 5× further off than patch 1 (both well above the 2/255 floor)
    offsets = np.stack([0.2 * rng.standard_normal((8, 8, 1)), 0.04 * rng.standard_normal((8, 8, 1))]).astype(np.float32)
    estimate = tf.Variable(target + offsets)
    psnr_loss, rmse = metrics.get_loss("psnr"), metrics.get_loss("rmse")
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
