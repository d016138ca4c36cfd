import dataclasses

import keras
import numpy as np
import pytest

from denoise import inference, metrics, targets, training
from denoise.config import FinalPhaseConfig, Levels, ModelConfig, NoiseConfig, SamplingConfig, TrainConfig, parse_params
from denoise.errors import ConfigError
from denoise.noise import add_noise_to_stack
from denoise.storage import Stack


def test_selectors_pick_two_different_adjacent_pixels_of_every_cell():
    one_hot = targets.draw_selectors(3, 8, 10, np.random.default_rng(0))
    assert one_hot.shape == (3, 4, 5, 8)
    first, second = one_hot[..., :4].argmax(-1), one_hot[..., 4:].argmax(-1)
    assert (one_hot[..., :4].sum(-1) == 1).all() and (one_hot[..., 4:].sum(-1) == 1).all()
    assert (first != second).all() and not ((first + second) == 3).any()  # never the diagonal pairs 0–3, 1–2


def test_the_keras_subsampling_equals_the_numpy_one(smooth_image):
    images = np.stack([smooth_image(12, 16, 3, seed=k) for k in range(2)])
    one_hot = targets.draw_selectors(2, 12, 16, np.random.default_rng(1))[..., :4]
    expected = targets.subsample_numpy(images, one_hot)
    got = keras.ops.convert_to_numpy(targets.Subsample()(images, one_hot))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    k = int(one_hot[0, 2, 3].argmax())  # cells are numbered 0 1 / 2 3
    np.testing.assert_array_equal(expected[0, 2, 3], images[0, 4 + k // 2, 6 + k % 2])


def test_the_loss_is_zero_only_for_a_consistent_exact_prediction():
    target = np.random.default_rng(2).random((2, 4, 4, 1)).astype(np.float32)
    exact = np.concatenate([target, np.zeros_like(target)], -1)
    assert float(targets.Neighbor2NeighborLoss()(target, exact)) == pytest.approx(0.0)
    inconsistent = np.concatenate([target, np.full_like(target, 0.1)], -1)
    assert float(targets.Neighbor2NeighborLoss()(target, inconsistent)) == pytest.approx(2 * 0.01, rel=1e-5)


def test_self_supervised_settings_are_checked_with_the_key():
    with pytest.raises(ConfigError, match="^train.sampling.fresh_noise: neighbor2neighbor"):
        parse_params({"train": {"target": "neighbor2neighbor"}})
    with pytest.raises(ConfigError, match="^train.sampling.patch_size: the unet model downsamples 8× \\(of half-size patches"):
        parse_params({"train": {"target": "neighbor2neighbor", "sampling": {"fresh_noise": False, "patch_size": 40}}})
    with pytest.raises(ConfigError, match="^train.target: unknown value 'noise2void'"):
        parse_params({"train": {"target": "noise2void"}})
    with pytest.raises(ConfigError, match="^train.final.target: refined refines a self-supervised network; train.target is clean"):
        parse_params({"train": {"final": {"epochs": 1, "target": "refined"}}})
    with pytest.raises(ConfigError, match="^train.final.target: unknown value 'clean'"):
        parse_params({"train": {"final": {"epochs": 1, "target": "clean"}}})
    refined = {"target": "neighbor2neighbor", "sampling": {"fresh_noise": False, "patch_size": 64}, "final": {"epochs": 1, "target": "refined"}}
    assert parse_params({"train": {**refined, "final": {**refined["final"], "loss": "l1", "patch_size": 40}}}).train.refines
    with pytest.raises(ConfigError, match="^train.final.patch_size: the unet model downsamples 8×, so it must be a multiple of 8"):
        parse_params({"train": {**refined, "final": {**refined["final"], "patch_size": 36}}})
    with pytest.raises(ConfigError, match="^train.final.target: refined adds fresh noise of the noise model, and noise.type is none"):
        parse_params({"noise": {"type": "none"}, "train": refined, "reference": {"target": "neighbor2neighbor"}})


@pytest.mark.parametrize("final", [FinalPhaseConfig(), FinalPhaseConfig(epochs=2, target="refined")], ids=["neighbor2neighbor", "refined"])
def test_neighbor2neighbor_learns_to_denoise_without_reading_a_clean_pixel(tmp_path, smooth_image, final):
    """Clean training and validation images full of NaN: one clean pixel read anywhere in training would
    make the loss or the validation NaN. The model must still denoise a held-out image. With refined targets
    for the last epochs too."""
    noise = NoiseConfig(sigma=Levels(values=(25.0,)))

    def stacks(names, seed):
        truth = Stack([{"name": n, "sha256": f"h-{n}"} for n in names], [smooth_image(64, 64, seed=seed + k) for k in range(len(names))])
        noisy = add_noise_to_stack(truth, noise)
        poisoned = Stack(truth.entries, [np.full_like(image, np.nan) for image in truth.images])
        return poisoned, noisy

    config = TrainConfig(model=ModelConfig(name="dncnn", depth=4, width=16), target="neighbor2neighbor", epochs=4, steps_per_epoch=40, final=final,
                         sampling=SamplingConfig(batch_size=8, patch_size=32, fresh_noise=False), mixed_precision="float32",
                         optimizer=dataclasses.replace(TrainConfig().optimizer, learning_rate=3e-3))
    state = training.train(config, noise, stacks("abcdef", 0), stacks(["v"], 20), model_path=tmp_path / "model.keras",
                           live_dir=tmp_path / "live", checkpoint_dir=tmp_path / "ckpt")
    assert np.isfinite(state["best_val_psnr"]) and len(state["history"]) == 4
    clean = smooth_image(64, 64, seed=40)
    noisy = clean + np.random.default_rng(3).normal(0, 25 / 255, clean.shape).astype(np.float32)
    out = inference.predict(inference.load_model(tmp_path / "model.keras"), noisy)
    assert metrics.psnr(clean, out) > metrics.psnr(clean, noisy) + 3


def test_a_folder_of_noisy_photos_alone_runs_through_dvc_repro(tmp_path):
    """noise.type none: the photos are the noisy ones. prepare -> noise (adds nothing) -> split -> baseline ->
    train (neighbor2neighbor) -> evaluate, which reports each output's estimated noise σ and writes strips."""
    import json

    from PIL import Image
    from tiny_repo import dvc, make_repo

    photos = tmp_path / "noisy-photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for k in range(10):
        y, x = np.mgrid[0:56, 0:72] / 40
        scene = np.stack([0.5 + 0.3 * np.sin(3 * x + k), 0.5 + 0.3 * np.cos(2 * y + k), 0.4 + 0.2 * np.sin(x + y)], -1)
        noisy = np.clip(scene + rng.normal(0, 20 / 255, scene.shape), 0, 1)
        Image.fromarray(np.round(noisy * 255).astype(np.uint8)).save(photos / f"{k}.png")
    self_supervised = {"target": "neighbor2neighbor", "sampling": {"fresh_noise": False, "patch_size": 32},
                       "final": {"epochs": 0, "loss": None, "patch_size": None, "batch_size": None}}
    repo = make_repo(tmp_path / "repo", data={"source": str(photos), "channels": 3, "max_side": None}, noise={"type": "none"}, train=self_supervised,
                     split={"test_fraction": 0.3})
    dvc(repo, "repro")
    metrics = json.loads((repo / "eval" / "metrics.json").read_text())["test"]
    assert list(metrics) == ["sigma_real"]
    figures = metrics["sigma_real"]
    assert set(figures) == {"noisy", "baseline", "reference", "model"} and all(set(v) == {"sigma"} for v in figures.values())
    assert 15 < figures["noisy"]["sigma"] < 25  # the photos' own noise, estimated
    assert figures["baseline"]["sigma"] < figures["noisy"]["sigma"] / 2
    assert len(list((repo / "eval" / "compare").glob("*.png"))) == 1
