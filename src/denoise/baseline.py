"""Classical denoisers to compare against: BM3D (optional `bm3d` package, non-commercial licence)
or scikit-image's non-local means when it is not installed; a median filter for salt-and-pepper."""

from __future__ import annotations

import importlib.util

import numpy as np
from scipy.ndimage import median_filter
from skimage.restoration import denoise_nl_means, estimate_sigma


def bm3d_available() -> bool:
    return importlib.util.find_spec("bm3d") is not None


def resolve_method(method: str, noise_type: str) -> str:
    """The method that will actually run, named as it is reported in the metrics."""
    if method == "none":
        return "none"
    if noise_type == "salt_pepper":
        return "median"
    if method == "auto":
        method = "bm3d" if bm3d_available() else "nlm"
    prefix = "anscombe_" if noise_type == "poisson" else ""
    return prefix + method


def _gaussian_denoiser(name: str):
    if name == "bm3d":
        import bm3d

        def run(image, sigma):
            if image.shape[-1] == 3:
                return bm3d.bm3d_rgb(image, sigma)
            return bm3d.bm3d(image[..., 0], sigma)[..., None]

        return run

    def run(image, sigma):
        sigma = max(sigma, 1e-4)
        out = denoise_nl_means(image, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True, channel_axis=-1)
        return out.reshape(image.shape)

    return run


def classical_denoise(noisy: np.ndarray, method: str, noise_type: str, level: float) -> np.ndarray:
    """Denoise one H×W×C image with a resolved method; `level` is the noise type's level."""
    if method == "median":
        return median_filter(noisy, size=(3, 3, 1)).astype(np.float32)
    run = _gaussian_denoiser(method.removeprefix("anscombe_"))
    if noise_type == "poisson":
        # Anscombe transform makes Poisson noise roughly Gaussian with unit variance.
        stabilised = 2.0 * np.sqrt(np.maximum(noisy * level, 0.0) + 3.0 / 8.0)
        scale = stabilised.max()
        restored = run(stabilised / scale, 1.0 / scale) * scale
        return ((restored / 2.0) ** 2 - 3.0 / 8.0).astype(np.float32) / level
    if noise_type in ("speckle", "none"):  # no known Gaussian level: the wavelet estimate
        sigma = float(np.mean(estimate_sigma(noisy, channel_axis=-1)))
    else:
        sigma = level / 255.0
    return np.asarray(run(noisy, sigma), dtype=np.float32)


def denoise_job(job) -> np.ndarray:
    """classical_denoise for one (image, method, noise type, level) job; method "none" returns the image."""
    image, method, noise_type, level = job
    return image if method == "none" else classical_denoise(image, method, noise_type, level)
