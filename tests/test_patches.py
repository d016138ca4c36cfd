import numpy as np
import pytest
from PIL import Image

from denoise.config import DataConfig, Levels, NoiseConfig, SamplingConfig, TrainConfig
from denoise.datasets import prepare
from denoise.errors import ConfigError
from denoise.noise import add_noise_to_stack
from denoise.patches import patch_batches


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
    assert 10 < (noisy - target).numpy().std() * 255 < 40
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
    sigmas = (noisy - target).numpy().std(axis=(1, 2, 3)) * 255
    assert sigmas.min() < 10 and sigmas.max() > 45 and sigmas.max() < 62  # spread over [0, 55]


def test_a_patch_larger_than_every_image_names_the_key(tmp_path):
    clean = photos(tmp_path, 2)
    with pytest.raises(ConfigError, match="^train.sampling.patch_size: 48 is larger than every training image"):
        patch_batches(clean, clean, config(patch_size=48), NoiseConfig(), 0, 1)
