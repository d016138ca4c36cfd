import numpy as np
import pytest

from denoise import metrics


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


def test_ssim_of_two_flat_images_is_the_luminance_term():
    """Flat images have no variance, so SSIM reduces to (2ab + C1) / (a² + b² + C1), C1 = (0.01 · 255)²."""
    a, b, c1 = 100.0, 150.0, (0.01 * 255) ** 2
    clean, estimate = np.full((32, 40, 1), a / 255), np.full((32, 40, 1), b / 255)
    assert metrics.ssim(clean, estimate) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-9)


@pytest.mark.parametrize("shape", [(48, 64, 1), (37, 53, 3)])
def test_ssim_and_psnr_match_tensorflows_as_the_published_tables_used(shape, smooth_image):
    """The figures in docs/ were computed with tf.image.ssim/psnr; the NumPy/scikit-image ones agree."""
    tf = pytest.importorskip("tensorflow")
    clean = smooth_image(*shape[:2], channels=shape[2])
    noisy = clean + np.random.default_rng(0).normal(0, 20 / 255, shape)
    pair = [tf.constant(metrics.to_8bit(x), tf.float32) for x in (clean, noisy)]
    assert metrics.ssim(clean, noisy) == pytest.approx(float(tf.image.ssim(*pair, max_val=255.0)), abs=2e-5)
    assert metrics.psnr(clean, noisy) == pytest.approx(float(tf.image.psnr(*pair, max_val=255.0)), abs=1e-4)
