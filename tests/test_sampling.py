import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from denoise.config import DataConfig, FinalPhaseConfig, Levels, NoiseConfig, SamplingConfig, TrainConfig
from denoise.datasets import prepare
from denoise.errors import ConfigError
from denoise.noise import add_noise_to_stack
from denoise.sampling import Batches, PatchSampler, dihedral


def patch_batches(clean, noisy, config, noise, first_step, steps):
    return list(Batches(PatchSampler(clean, noisy, config, noise), first_step, steps))


def photos(folder, count, size=(50, 40)):
    rng = np.random.default_rng(0)
    for k in range(count):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0]), dtype=np.uint8)).save(folder / f"{k}.png")
    return prepare(str(folder), DataConfig(source=str(folder), channels=1))[0]


def config(**sampling):
    return TrainConfig(sampling=SamplingConfig(**{"batch_size": 4, "patch_size": 16, **sampling}), epochs=1, steps_per_epoch=4)


def test_patch_batches_are_a_function_of_the_step_number(tmp_path):
    clean = photos(tmp_path, 3)
    noise = NoiseConfig()
    whole = list(patch_batches(clean, add_noise_to_stack(clean, noise), config(), noise, 0, 4))
    resumed = list(patch_batches(clean, add_noise_to_stack(clean, noise), config(), noise, 2, 2))
    noisy, target = whole[0]
    assert noisy.shape == target.shape == (4, 16, 16, 1)
    assert 10 < (noisy - target).std() * 255 < 40
    for (a, b), (c, d) in zip(whole[2:], resumed):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    assert not np.array_equal(whole[0][0], whole[1][0])


def test_stored_noise_pairs_crop_the_same_place(tmp_path):
    clean = photos(tmp_path, 2)
    noise = NoiseConfig(sigma=Levels(values=(0.0,)))  # zero noise: input must equal target exactly
    for noisy, target in patch_batches(clean, add_noise_to_stack(clean, noise), config(batch_size=8, fresh_noise=False), noise, 0, 2):
        np.testing.assert_allclose(noisy, target, atol=1e-6)


def test_fresh_levels_draw_a_noise_level_per_patch(tmp_path):
    clean = photos(tmp_path, 3)
    blind = config(batch_size=32, fresh_levels=Levels(low=0.0, high=55.0))
    noisy, target = next(iter(patch_batches(clean, clean, blind, NoiseConfig(), 0, 1)))
    sigmas = (noisy - target).std(axis=(1, 2, 3)) * 255
    assert sigmas.min() < 10 and sigmas.max() > 45 and sigmas.max() < 62  # spread over [0, 55]


def test_a_patch_larger_than_every_image_names_the_key(tmp_path):
    clean = photos(tmp_path, 2)
    with pytest.raises(ConfigError, match="^train.sampling.patch_size: 48 is larger than every training image"):
        PatchSampler(clean, clean, config(patch_size=48), NoiseConfig())


def test_the_final_epochs_cut_their_own_patch_and_batch_size(tmp_path):
    clean = photos(tmp_path, 3)
    noise = NoiseConfig()
    plain = TrainConfig(sampling=SamplingConfig(batch_size=4, patch_size=16), epochs=3, steps_per_epoch=3)
    config = dataclasses.replace(plain, final=FinalPhaseConfig(epochs=1, patch_size=24, batch_size=2))
    sampler = PatchSampler(clean, clean, config, noise)
    batches = [sampler.batch(step) for step in range(9)]
    assert [x.shape for x, _ in batches] == [(4, 16, 16, 1)] * 6 + [(2, 24, 24, 1)] * 3
    resumed = list(Batches(PatchSampler(clean, clean, config, noise), 6, 3))  # as after an interruption
    assert len(resumed) == 3 and all(np.array_equal(a, b) for (a, _), (b, _) in zip(resumed, batches[6:]))
    before = PatchSampler(clean, clean, plain, noise)
    assert all(np.array_equal(before.batch(step)[0], batches[step][0]) for step in range(6))  # the earlier epochs are unchanged
    too_large = dataclasses.replace(config, final=FinalPhaseConfig(epochs=1, patch_size=64))
    with pytest.raises(ConfigError, match="^train.final.patch_size: 64 is larger than every training image"):
        PatchSampler(clean, clean, too_large, noise)


def test_flips_and_rotations_are_the_eight_symmetries_and_keep_pairs_aligned(tmp_path):
    patch = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)
    flips = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], bool)
    views = dihedral(np.repeat(patch, 8, axis=0), flips)
    assert len({v.tobytes() for v in views}) == 8
    clean = photos(tmp_path, 2)
    noise = NoiseConfig(sigma=Levels(values=(0.0,)))
    stored = config(batch_size=8, fresh_noise=False)
    noisy, target = PatchSampler(clean, add_noise_to_stack(clean, noise), stored, noise).batch(5)
    np.testing.assert_allclose(noisy, target, atol=1e-6)  # zero noise: the stored copy is cut and turned with the clean one


def test_a_mix_of_noise_types_gives_each_patch_one_type(tmp_path):
    rng = np.random.default_rng(1)
    for k in range(3):
        Image.fromarray(rng.integers(60, 200, (40, 50, 3), dtype=np.uint8)).save(tmp_path / f"{k}.png")
    clean = prepare(str(tmp_path), DataConfig(source=str(tmp_path), channels=3))[0]
    mixed = config(batch_size=64, noise_types=("gaussian", "salt_pepper"), fresh_levels=Levels(values=(10.0,)))
    noisy, target = next(iter(patch_batches(clean, clean, mixed, NoiseConfig(), 0, 1)))
    salted = ((noisy == 0) | (noisy == 1)).mean(axis=(1, 2, 3)) > 0.02  # salt and pepper: extreme values
    assert 10 < salted.sum() < 54
    gaussian = (noisy - target)[~salted].std() * 255
    assert 9 < gaussian < 11  # fresh_levels apply to noise.type (gaussian); salt_pepper uses noise.amount


def test_camera_noise_in_a_gray_pipeline_names_the_key():
    from denoise.config import parse_params

    with pytest.raises(ConfigError, match="^train.sampling.noise_types: camera noise needs RGB images"):
        parse_params({"data": {"channels": 1}, "train": {"sampling": {"noise_types": ["gaussian", "camera"]}}})
    with pytest.raises(ConfigError, match="^noise.type: camera noise needs RGB images"):
        parse_params({"data": {"channels": 1}, "noise": {"type": "camera"}})


def test_zoomed_patches_keep_their_size_are_smoother_and_need_fresh_noise(tmp_path):
    """train.sampling.zoom cuts smaller clean patches and enlarges them: same shapes, a function of the step,
    smoother than unzoomed patches of the same (random-pixel) photos; stored noisy copies cannot be zoomed."""
    clean = photos(tmp_path, 3)
    noise = NoiseConfig(sigma=Levels(values=(0.0,)))
    plain = patch_batches(clean, clean, config(batch_size=16), noise, 0, 2)
    zoomed = patch_batches(clean, clean, config(batch_size=16, zoom=Levels(low=2.0, high=3.0)), noise, 0, 2)
    again = patch_batches(clean, clean, config(batch_size=16, zoom=Levels(low=2.0, high=3.0)), noise, 0, 2)
    for (_, a), (_, b), (_, c) in zip(plain, zoomed, again):
        assert a.shape == b.shape == (16, 16, 16, 1) and 0 <= b.min() and b.max() <= 1
        np.testing.assert_array_equal(b, c)
        assert np.abs(np.diff(b, axis=1)).mean() < 0.5 * np.abs(np.diff(a, axis=1)).mean()
    with pytest.raises(ConfigError, match="train.sampling.zoom: zoomed clean patches need fresh noise"):
        SamplingConfig(fresh_noise=False, zoom=Levels(low=1.0, high=2.0)).validate("train.sampling")


def test_worker_processes_make_the_same_batches_in_any_order_of_asking(tmp_path):
    """train.workers: a pool of processes makes the batches ahead of the step; batch b is the same arrays as
    in-process, also when fit() asks for a batch again or skips ahead."""
    clean = photos(tmp_path, 3)
    noise = NoiseConfig()
    blind = config(fresh_levels=Levels(low=0.0, high=55.0))
    alone = list(Batches(PatchSampler(clean, clean, blind, noise), 2, 6))
    pooled = Batches(PatchSampler(clean, clean, blind, noise), 2, 6, workers=2)
    try:
        order = [0, 0, 1, 2, 4, 5, 3]
        got = {index: pooled[index] for index in order}
        with ThreadPoolExecutor(4) as threads:  # as Keras's enqueuer asks: from several threads at once
            asked = list(threads.map(pooled.__getitem__, [5, 1, 0, 3, 2, 4, 1, 5]))
    finally:
        pooled.close()
    assert all(np.array_equal(got[k][0], alone[k][0]) and np.array_equal(got[k][1], alone[k][1]) for k in order)
    assert all(np.array_equal(a[0], alone[k][0]) for a, k in zip(asked, [5, 1, 0, 3, 2, 4, 1, 5]))
    assert not np.array_equal(got[0][0], got[1][0])
