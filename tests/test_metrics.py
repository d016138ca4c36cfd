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
