import numpy as np
import pytest

from denoise import config, losses, training


def test_every_loss_params_accept_is_implemented():
    # config.LOSSES validates params.yaml without importing Keras; losses.LOSSES builds them
    assert list(losses.LOSSES) == list(config.LOSSES)


@pytest.mark.parametrize("name", config.LOSSES)
def test_losses_grow_away_from_the_target(name):
    target = np.array([[0.2, 0.7]], np.float32)
    loss = losses.get_loss(name)
    assert float(loss(target, target + 0.1)) > float(loss(target, target))


def test_rmse_is_the_root_of_mse_with_gradients_of_l1s_size():
    import tensorflow as tf
    rng = np.random.default_rng(0)
    target = tf.constant(rng.random((2, 8, 8, 1)), tf.float32)
    estimate = tf.Variable(target + 0.02 * rng.standard_normal((2, 8, 8, 1)).astype(np.float32))
    rmse, mse, l1 = (losses.get_loss(n) for n in ("rmse", "mse", "l1"))
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
    phased = training.PhasedLoss("l1", "mse")
    assert float(phased(target, estimate)) == pytest.approx(0.1)
    phased.use_final.assign(True)
    assert float(phased(target, estimate)) == pytest.approx(0.01)
    again = keras.losses.deserialize(keras.losses.serialize(phased))
    assert isinstance(again, training.PhasedLoss) and (again.first_name, again.final_name) == ("l1", "mse")


def test_psnr_loss_weighs_each_patch_by_its_own_error():
    import tensorflow as tf
    rng = np.random.default_rng(0)
    target = tf.constant(rng.random((2, 8, 8, 1)), tf.float32)
    # patch 0 is 5× further off than patch 1 (both well above the 2/255 floor)
    offsets = np.stack([0.2 * rng.standard_normal((8, 8, 1)), 0.04 * rng.standard_normal((8, 8, 1))]).astype(np.float32)
    estimate = tf.Variable(target + offsets)
    psnr_loss, rmse = losses.get_loss("psnr"), losses.get_loss("rmse")
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


def test_what_the_gpu_run_imports_needs_no_tensorflow():
    # bench/gpu_train.py runs these modules under Keras's JAX backend on a machine without TensorFlow; JAX
    # is not installed here, so the check reads their imports (and those of the package modules they import)
    import ast
    from pathlib import Path
    package = Path(losses.__file__).parent
    pending, seen = ["losses", "models", "optimization", "config", "storage", "tiling", "images"], set()
    while pending:
        name = pending.pop()
        seen.add(name)
        for node in ast.walk(ast.parse((package / f"{name}.py").read_text())):
            if isinstance(node, ast.Import):
                assert not any(alias.name.split(".")[0] == "tensorflow" for alias in node.names), name
            elif isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] != "tensorflow", name
                inner = [node.module] if node.level and node.module else [alias.name for alias in node.names] if node.level else []
                pending += [m for m in inner if m not in seen and (package / f"{m}.py").exists()]
    assert {"errors", "config"} <= seen
