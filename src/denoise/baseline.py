"""Classical denoisers to compare against: BM3D (optional `bm3d` package, non-commercial licence)
or scikit-image's non-local means when it is not installed; a median filter for salt-and-pepper.

With the environment variable DENOISE_BASELINE_CACHE naming a folder, each result is also kept there under
a hash of everything it is a function of (the noisy image's bytes, method, noise type and level, the source
of the functions that compute it, and the versions of the packages they call), and taken from there the next
time: CBM3D on CBSD68 costs about 40 minutes on two cores, and the baseline stage re-runs whenever a module
it imports changes. `make bench` sets it to bench/cache/baseline."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import inspect
import json
import os
from pathlib import Path

import numpy as np
from scipy.ndimage import median_filter
from skimage.restoration import denoise_nl_means, estimate_sigma

from .storage import atomic_path


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


CACHE_ENV = "DENOISE_BASELINE_CACHE"
_CODE = "".join(inspect.getsource(f) for f in (classical_denoise, _gaussian_denoiser))  # what a result is computed by


@functools.cache
def _versions() -> tuple[str | None, ...]:
    """The versions of the packages a result is computed with (looked up once per process, not per image)."""
    def version(package):
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    return tuple(map(version, ("bm3d", "scikit-image", "scipy", "numpy")))


def result_key(image: np.ndarray, method: str, noise_type: str, level) -> str:
    """The cache key of classical_denoise(image, method, noise_type, level): a hash of all it depends on."""
    image = np.ascontiguousarray(image)
    facts = [method, noise_type, level, image.shape, image.dtype.str, _CODE, *_versions()]
    digest = hashlib.sha256(json.dumps(facts, default=str).encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def denoise_job(job) -> np.ndarray:
    """classical_denoise for one (image, method, noise type, level) job; method "none" returns the image.
    Through the result cache where DENOISE_BASELINE_CACHE is set."""
    image, method, noise_type, level = job
    if method == "none":
        return image
    folder = os.environ.get(CACHE_ENV)
    if not folder:
        return classical_denoise(image, method, noise_type, level)
    path = Path(folder) / f"{result_key(image, method, noise_type, level)}.npy"
    try:
        return np.load(path)
    except (OSError, ValueError, EOFError):  # not there yet (or unreadable): compute it
        pass
    out = classical_denoise(image, method, noise_type, level)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, out)
    return out
