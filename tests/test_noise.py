import numpy as np
import pytest

from denoise.config import Levels, NoiseConfig
from denoise.noise import add_noise, derive_seed, noisy_copies, sample_levels

FLAT = np.full((200, 200, 1), 0.5, np.float32)


def test_gaussian_has_the_requested_sigma_and_is_not_clipped():
    noisy = add_noise(FLAT, "gaussian", 25.0, derive_seed(1))
    assert abs((noisy - FLAT).std() * 255 - 25) < 0.5
    assert abs((noisy - FLAT).mean()) < 0.005
    extreme = add_noise(np.zeros_like(FLAT), "gaussian", 25.0, derive_seed(1))
    assert extreme.min() < 0
    assert add_noise(np.zeros_like(FLAT), "gaussian", 25.0, derive_seed(1), clip=True).min() == 0


def test_poisson_is_unbiased_with_variance_x_over_peak():
    noisy = add_noise(FLAT, "poisson", 30.0, derive_seed(2))
    assert abs(noisy.mean() - 0.5) < 0.01
    assert abs(noisy.var() - 0.5 / 30) < 0.002


def test_salt_and_pepper_hits_the_requested_fraction():
    noisy = add_noise(FLAT, "salt_pepper", 0.1, derive_seed(3))
    hit = noisy != 0.5
    assert abs(hit.mean() - 0.1) < 0.01
    assert set(np.unique(noisy[hit])) == {0.0, 1.0}


def test_speckle_scales_with_intensity():
    image = np.concatenate([np.full((100, 100, 1), 0.2), np.full((100, 100, 1), 0.8)], 1).astype(np.float32)
    residual = add_noise(image, "speckle", 25.0, derive_seed(4)) - image
    assert residual[:, 100:].std() > 3 * residual[:, :100].std()


def test_same_seed_same_noise_other_seed_other_noise():
    a = add_noise(FLAT, "gaussian", 15.0, derive_seed("x"))
    np.testing.assert_array_equal(a, add_noise(FLAT, "gaussian", 15.0, derive_seed("x")))
    assert not np.array_equal(a, add_noise(FLAT, "gaussian", 15.0, derive_seed("y")))


def test_image_noise_depends_on_its_own_hash_only():
    config = NoiseConfig(sigma=Levels(values=(15.0, 50.0)))
    first = dict(noisy_copies(FLAT, "hash-a", config))
    again = dict(noisy_copies(FLAT, "hash-a", config))
    other = dict(noisy_copies(FLAT, "hash-b", config))
    assert sorted(first) == [15.0, 50.0]
    np.testing.assert_array_equal(first[15.0], again[15.0])
    assert not np.array_equal(first[15.0], other[15.0])


def test_range_levels_stay_in_range_and_lists_pick_listed_values():
    drawn = sample_levels(Levels(low=0.0, high=55.0), 1000, derive_seed(5))
    assert drawn.min() >= 0 and drawn.max() <= 55 and drawn.std() > 10
    picked = sample_levels(Levels(values=(15.0, 25.0, 50.0)), 300, derive_seed(6))
    assert set(picked) == {15.0, 25.0, 50.0}


def test_per_patch_levels_broadcast():
    batch = np.full((2, 50, 50, 1), 0.5, np.float32)
    noisy = add_noise(batch, "gaussian", np.array([5.0, 50.0])[:, None, None, None], derive_seed(7))
    stds = (noisy - batch).std(axis=(1, 2, 3)) * 255
    assert stds[0] == pytest.approx(5, rel=0.1) and stds[1] == pytest.approx(50, rel=0.1)
