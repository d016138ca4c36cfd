"""The DnCNN-protocol quality metrics: PSNR and SSIM on the 8-bit scale, in NumPy and scikit-image
(no deep-learning framework needed to score). Losses: losses.py."""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity


def to_8bit(image: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and round to the 0–255 scale (as floats), as the DnCNN protocol measures."""
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.float64)


def psnr(clean: np.ndarray, estimate: np.ndarray) -> float:
    """PSNR in dB on the 8-bit scale, after clipping and rounding both images."""
    mse = float(np.mean((to_8bit(clean) - to_8bit(estimate)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def ssim(clean: np.ndarray, estimate: np.ndarray) -> float:
    """SSIM of H×W×C images on the 8-bit scale, averaged over channels: Gaussian window σ 1.5 (11 taps),
    population covariances, mean over the pixels whose window lies inside the image (Wang et al. 2004,
    as tf.image.ssim and MATLAB's ssim)."""
    return float(structural_similarity(to_8bit(clean), to_8bit(estimate), data_range=255.0, channel_axis=-1,
                                       gaussian_weights=True, sigma=1.5, use_sample_covariance=False))
