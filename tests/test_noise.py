import numpy as np
import pytest

from denoise.config import CameraSteps, Levels, NoiseConfig
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


def smooth_rgb(size=96):
    """A smooth color image (gradients): noise dominates the difference to it."""
    rows, cols = np.mgrid[:size, :size] / size
    return np.stack([0.2 + 0.6 * rows, 0.3 + 0.4 * cols, 0.5 - 0.3 * rows * cols], -1).astype(np.float32)


def psnr(a, b):
    return 10 * np.log10(1 / np.mean((a - b) ** 2))


def test_camera_noise_grows_with_the_shot_level_and_is_seeded():
    image = smooth_rgb()
    scores = [np.mean([psnr(image, add_noise(image, "camera", shot, derive_seed(k))) for k in range(3)]) for shot in (1e-4, 1e-3, 1e-2)]
    assert scores[0] > scores[1] + 3 > scores[2] + 6
    np.testing.assert_array_equal(add_noise(image, "camera", 1e-3, derive_seed(1)), add_noise(image, "camera", 1e-3, derive_seed(1)))
    assert not np.array_equal(add_noise(image, "camera", 1e-3, derive_seed(1)), add_noise(image, "camera", 1e-3, derive_seed(2)))


def test_camera_noise_is_spatially_correlated_unlike_gaussian():
    """Demosaicing spreads each photosite's noise over its neighbours: adjacent residuals correlate."""
    flat = np.full((128, 128, 3), 0.5, np.float32)
    camera = add_noise(flat, "camera", 3e-3, derive_seed(3)) - flat
    gaussian = add_noise(flat, "gaussian", 10.0, derive_seed(3)) - flat

    def neighbour_correlation(residual):
        return np.corrcoef(residual[:, :-1, 1].ravel(), residual[:, 1:, 1].ravel())[0, 1]

    assert neighbour_correlation(camera) > 0.2 and abs(neighbour_correlation(gaussian)) < 0.05


def test_camera_noise_keeps_odd_shapes_batches_and_jpeg_quality():
    image = smooth_rgb(37)[:, :31]
    assert add_noise(image, "camera", 1e-3, derive_seed(5)).shape == (37, 31, 3)
    batch = np.stack([image] * 4)
    levels = np.array([1e-4, 1e-3, 3e-3, 1e-2], np.float32)[:, None, None, None]
    noisy = add_noise(batch, "camera", levels, derive_seed(6), camera=CameraSteps(jpeg_quality=Levels(low=60.0, high=100.0)))
    assert noisy.shape == batch.shape and noisy.dtype == np.float32 and 0 <= noisy.min() and noisy.max() <= 1
    errors = ((noisy - batch) ** 2).mean(axis=(1, 2, 3))
    assert list(errors) == sorted(errors)  # one shot level per patch


def test_camera_noise_reduction_leaves_wider_grain_and_chroma_blotches():
    """The camera's noise reduction (noise.nr) low-passes the noise: the wider it is, the more the noise two
    pixels apart agrees, and the less of it the white-noise estimate in the models' noise map sees; chroma
    is smoothed harder than luma, so that, as in in-camera JPEGs, the noise left is mostly brightness noise
    (without noise reduction, demosaicing makes it mostly colour noise)."""
    flat = np.full((96, 96, 3), 0.4, np.float32)
    noise = {width: add_noise(flat, "camera", 4e-3, derive_seed(9), camera=CameraSteps(nr=Levels(values=(width,)))) - flat for width in (0.0, 1.0, 2.0)}

    def correlation(residual, lag=2):
        return np.corrcoef(residual[:, :-lag].ravel(), residual[:, lag:].ravel())[0, 1]

    luma = {width: n.mean(axis=-1) for width, n in noise.items()}
    chroma = {width: n[..., 0] - n[..., 1] for width, n in noise.items()}
    assert correlation(luma[0.0]) < correlation(luma[1.0]) < correlation(luma[2.0])
    assert correlation(chroma[1.0]) > correlation(luma[1.0])
    high = {width: np.abs(np.diff(n, axis=0)).mean() for width, n in noise.items()}
    assert high[0.0] > high[1.0] > high[2.0]
    spread = {width: (n.mean(axis=-1, keepdims=True).std(), (n - n.mean(axis=-1, keepdims=True)).std()) for width, n in noise.items()}
    assert spread[0.0][1] > spread[0.0][0] and spread[1.0][1] < spread[1.0][0] and spread[2.0][1] < 0.7 * spread[2.0][0]


def test_camera_noise_refuses_gray_images():
    from denoise.errors import DenoiseError

    with pytest.raises(DenoiseError, match="camera noise needs RGB images"):
        add_noise(FLAT, "camera", 1e-3, derive_seed(7))


def test_log_uniform_ranges_spread_over_decades():
    drawn = sample_levels(Levels(low=1e-4, high=1e-2, log=True), 2000, derive_seed(8))
    assert drawn.min() >= 1e-4 and drawn.max() <= 1e-2
    assert 0.4 < np.mean(drawn < 1e-3) < 0.6  # half below the geometric middle
