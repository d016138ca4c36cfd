"""The DnCNN-protocol quality metrics: PSNR and SSIM on the 8-bit scale (tf.image). Losses: losses.py."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def to_8bit(image: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and round to the 0–255 scale (as floats), as the DnCNN protocol measures."""
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.float32)


def psnr(clean: np.ndarray, estimate: np.ndarray) -> float:
    """PSNR in dB on the 8-bit scale, after clipping and rounding both images."""
    return float(tf.image.psnr(to_8bit(clean), to_8bit(estimate), max_val=255.0))


def ssim(clean: np.ndarray, estimate: np.ndarray) -> float:
    """SSIM (Gaussian window 11, σ 1.5, as tf.image) on the 8-bit scale, averaged over channels."""
    return float(tf.image.ssim(to_8bit(clean), to_8bit(estimate), max_val=255.0))
