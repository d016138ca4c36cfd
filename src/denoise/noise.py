"""Noise models, written once in NumPy so that the noise stage (one image at a time) and training with
fresh noise (a batch of patches) draw from the same code, under any Keras backend and on any machine.

All randomness comes from generators seeded by what it is for: the same seed gives the same noise, on
any run and in any order. Levels are in each type's unit: gaussian and speckle σ in 8-bit units,
poisson peak (photon count at white), salt_pepper amount (fraction of pixels), camera shot (the shot-noise
variance per unit of linear raw signal; Brooks et al. 2019 draw it log-uniformly from 0.0001 to 0.012).
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image
from scipy.ndimage import convolve, gaussian_filter

from .config import CameraSteps, Levels, NoiseConfig
from .errors import DenoiseError
from .storage import Stack, save_stack_parallel, shard_groups


def derive_seed(*parts) -> tuple[int, int]:
    """A seed pair from any parts (ints, strings): same parts, same seed."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:4], "little") >> 1, int.from_bytes(digest[4:8], "little") >> 1


def generator(seed) -> np.random.Generator:
    """A NumPy generator from a seed (an int or a tuple of ints, as derive_seed gives), or the generator itself."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def add_noise(clean: np.ndarray, noise_type: str, level, seed, clip: bool = False, camera: CameraSteps = CameraSteps()) -> np.ndarray:
    """Noisy float32 version of `clean` (floats in [0, 1], H×W×C or N×H×W×C); `level` broadcasts against
    `clean` (per patch). Camera noise draws a JPEG quality and the width of the camera's noise reduction per
    image from `camera` (NoiseConfig.camera; by default neither step)."""
    rng = generator(seed)
    clean = np.asarray(clean, np.float32)
    level = np.asarray(level, np.float32)
    if noise_type == "camera":
        if clean.shape[-1] != 3:
            raise DenoiseError(f"camera noise needs RGB images (data.channels: 3), got {clean.shape[-1]} channel(s)")
        batch = clean if clean.ndim == 4 else clean[None]
        shots = np.broadcast_to(level.reshape(-1) if level.size > 1 else level.reshape(()), (len(batch),))
        qualities = sample_levels(camera.jpeg_quality, len(batch), rng) if camera.jpeg_quality else np.full(len(batch), 100.0)
        widths = sample_levels(camera.nr, len(batch), rng) if camera.nr else np.zeros(len(batch))
        noisy = np.stack([_camera_image(image, float(s), float(q), rng, float(w))
                          for image, s, q, w in zip(batch, shots, qualities, widths)])
        return noisy if clean.ndim == 4 else noisy[0]
    if noise_type == "none":  # the images are noisy already (real photos with no clean version)
        return clean.copy()
    if noise_type == "gaussian":
        noisy = clean + rng.standard_normal(clean.shape, np.float32) * (level / 255.0)
    elif noise_type == "speckle":
        noisy = clean + clean * rng.standard_normal(clean.shape, np.float32) * (level / 255.0)
    elif noise_type == "poisson":
        noisy = rng.poisson(np.maximum(clean, 0.0) * level).astype(np.float32) / level
    elif noise_type == "salt_pepper":
        draw = rng.random(clean.shape, np.float32)
        noisy = np.where(draw < level / 2, 1.0, np.where(draw > 1 - level / 2, 0.0, clean))
    else:
        raise ValueError(f"unknown noise type {noise_type!r}")
    noisy = noisy.astype(np.float32, copy=False)
    return np.clip(noisy, 0.0, 1.0) if clip else noisy


def sample_levels(levels: Levels, count: int, seed) -> np.ndarray:
    """`count` levels drawn from a range (uniform) or a list (uniform choice), as float32."""
    rng = generator(seed)
    if levels.is_range and levels.log:
        return np.exp(rng.uniform(np.log(levels.low), np.log(levels.high), count)).astype(np.float32)
    if levels.is_range:
        return rng.uniform(levels.low, levels.high, count).astype(np.float32)
    return np.asarray(levels.values, np.float32)[rng.integers(0, len(levels.values), count)]


def noisy_copies(clean: np.ndarray, image_hash: str, config: NoiseConfig):
    """Yield (level, noisy) for one image: one copy per listed level, or one at a level drawn from
    the range. Seeds come from the global seed and the image's content hash, so adding an image
    never changes another image's noise."""
    levels = config.levels
    if config.type == "none":
        chosen = [0.0]
    elif levels.is_range:
        chosen = [float(sample_levels(levels, 1, derive_seed("level", config.seed, image_hash))[0])]
    else:
        chosen = list(levels.values)
    for level in chosen:
        yield level, add_noise(clean, config.type, level, derive_seed("noise", config.seed, image_hash, config.type, level), config.clip,
                               config.camera)


def noisy_stack(clean: Stack, config: NoiseConfig):
    """Yield (entry, noisy) for every clean image and level, in order, in this process; each entry names
    its clean image and level. The noise depends on the image's content hash alone."""
    for entry, image in clean:
        for level, copy in noisy_copies(image, entry["sha256"], config):
            group = "real" if config.type == "none" else config.levels.label(level)
            yield {"name": entry["name"], "level": level, "group": group}, copy


def _noisy_shard(job):
    return noisy_stack(*job)


def save_noisy_stack(path, clean: Stack, config: NoiseConfig, processes: int | None = None) -> int:
    """Write the noisy copies of a clean stack as a float32 stack at `path`: each shard drawn and written by
    a worker process (default: every core) that reads its own clean images. Returns the number of copies."""
    copies = 1 if config.levels.is_range or config.type == "none" else len(config.levels.values)
    sizes = [int(np.prod(clean.shape(k))) * copies * 4 for k in range(len(clean))]
    jobs = ((clean.subset(group), config) for group in shard_groups(sizes))
    return save_stack_parallel(path, jobs, _noisy_shard, np.float32, processes)


def add_noise_to_stack(clean: Stack, config: NoiseConfig) -> Stack:
    """noisy_stack(clean, config) in memory, in this process (for small stacks: test folders, tests)."""
    noisy = Stack()
    for entry, image in noisy_stack(clean, config):
        noisy.append(entry, image)
    return noisy


# Camera noise: Brooks et al. 2019, "Unprocessing images for learned raw denoising" (CVPR), sampling ranges and
# camera matrices from their code; Poisson–Gaussian raw noise as Foi et al. 2008; the result is JPEG-compressed
# as SCUNet's data synthesis does (Zhang et al. 2023).
XYZ_TO_CAMERA = np.array([[[1.0234, -0.2969, -0.2266], [-0.5625, 1.6328, -0.0469], [-0.0703, 0.2188, 0.6406]],
                          [[0.4913, -0.0541, -0.0202], [-0.613, 1.3513, 0.2906], [-0.1564, 0.2151, 0.7183]],
                          [[0.838, -0.263, -0.0639], [-0.2887, 1.0725, 0.2496], [-0.0627, 0.1427, 0.5438]],
                          [[0.6596, -0.2079, -0.0562], [-0.4782, 1.3016, 0.1933], [-0.097, 0.1581, 0.5181]]])
SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]])
GREEN_KERNEL = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32) / 4
RED_BLUE_KERNEL = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4


def _camera(rng: np.random.Generator):
    """One random camera: sRGB→camera matrix (a random convex mix of 4 real cameras, rows summing to 1) and
    white-balance gains (red, green, blue) including an overall brightness gain."""
    weights = rng.uniform(1e-8, 1e8, 4)
    rgb_to_camera = np.tensordot(weights / weights.sum(), XYZ_TO_CAMERA, 1) @ SRGB_TO_XYZ
    rgb_to_camera /= rgb_to_camera.sum(axis=1, keepdims=True)
    gains = np.array([rng.uniform(1.9, 2.4), 1.0, rng.uniform(1.5, 1.9)]) / rng.normal(0.8, 0.1)
    return rgb_to_camera.astype(np.float32), gains.astype(np.float32)


def _bayer_masks(height: int, width: int) -> np.ndarray:
    """H×W×3 masks of an RGGB colour filter array: which channel each photosite records."""
    rows, cols = np.mgrid[:height, :width]
    red, blue = (rows % 2 == 0) & (cols % 2 == 0), (rows % 2 == 1) & (cols % 2 == 1)
    return np.stack([red, ~(red | blue), blue], axis=-1).astype(np.float32)


def _demosaic(mosaic: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Bilinear demosaicing of an H×W mosaic into H×W×3."""
    planes = [convolve(mosaic * masks[..., c], kernel, mode="mirror")
              for c, kernel in enumerate((RED_BLUE_KERNEL, GREEN_KERNEL, RED_BLUE_KERNEL))]
    return np.stack(planes, axis=-1)


def _tone(linear: np.ndarray) -> np.ndarray:
    """Linear light to display: gamma 1/2.2, then the smoothstep tone curve (Brooks et al.)."""
    gamma = np.maximum(linear, 1e-8) ** (1 / 2.2)
    return 3 * gamma**2 - 2 * gamma**3


def _untone(display: np.ndarray) -> np.ndarray:
    """The exact inverse of _tone on [0, 1]."""
    gamma = 0.5 - np.sin(np.arcsin(1 - 2 * np.clip(display, 0.0, 1.0)) / 3)
    return np.maximum(gamma, 1e-8) ** 2.2


def _noise_reduction(noise: np.ndarray, width: float, rng: np.random.Generator) -> np.ndarray:
    """The camera's own noise reduction, as a low-pass on the processed noise: its luma (the channel mean) by a
    Gaussian of `width` pixels, keeping a random fraction (0–0.5) of the luma's high frequencies, as a
    camera's milder luma NR and its sharpening do, and its chroma (the rest) by 2–4 times that width, since
    cameras smooth colour noise far harder than brightness noise. What is left is the blotchy, spatially
    correlated, mostly brightness noise of in-camera JPEGs, which a white-noise level estimate barely sees."""
    keep, chroma_factor = rng.uniform(0.0, 0.5), rng.uniform(2.0, 4.0)
    if width <= 0:
        return noise
    luma = noise.mean(axis=-1, keepdims=True)
    smooth = gaussian_filter(luma, (width, width, 0))
    return smooth + keep * (luma - smooth) + gaussian_filter(noise - luma, (chroma_factor * width, chroma_factor * width, 0))


def _camera_image(clean: np.ndarray, shot: float, quality: float, rng: np.random.Generator, nr: float = 0.0) -> np.ndarray:
    """One H×W×3 sRGB image as a camera would have recorded it: the image taken back to a raw Bayer mosaic
    (inverse tone curve and gamma, inverse colour matrix, inverse white balance), Poisson–Gaussian noise there
    (variance read + shot · signal, the read noise tied to the shot noise as Brooks et al. fit it over real
    cameras), then demosaicing, white balance, colour matrix, gamma and tone curve. The noise is the
    difference that the noisy mosaic makes after processing, low-passed by the camera's noise reduction of
    width `nr` (_noise_reduction), added to the clean image (so the clean image stays the target, with no
    demosaicing loss of its own), and the result is saved as a JPEG at `quality`."""
    rgb_to_camera, gains = _camera(rng)
    height, width = clean.shape[:2]
    masks = _bayer_masks(height, width)
    raw = (_untone(clean) @ rgb_to_camera.T) / gains
    mosaic = (raw * masks).sum(axis=-1)
    read = np.exp(2.18 * np.log(shot) + 1.20 + rng.normal(0.0, 0.26))
    noisy_mosaic = mosaic + rng.standard_normal(mosaic.shape, np.float32) * np.sqrt(read + shot * np.maximum(mosaic, 0.0))

    def process(m):
        camera_rgb = _demosaic(m, masks) * gains
        return _tone(np.clip(camera_rgb @ np.linalg.inv(rgb_to_camera).T, 0.0, 1.0))

    noisy = np.clip(clean + _noise_reduction(process(noisy_mosaic) - process(mosaic), nr, rng), 0.0, 1.0)
    if quality >= 100:
        return noisy.astype(np.float32)
    buffer = io.BytesIO()
    Image.fromarray(np.round(noisy * 255).astype(np.uint8)).save(buffer, "JPEG", quality=int(round(quality)))
    return np.asarray(Image.open(buffer), np.float32) / 255.0
