"""The released photo model (models/released/): a fresh clone's `denoise` uses it with nothing to train,
its provenance matches the file, and --sigma sets its strength."""

import hashlib
import json

import numpy as np
import pytest
import skimage.data
from PIL import Image

from denoise import cli, images, metrics
from denoise.config import CameraSteps, Levels
from denoise.inference import Denoiser
from denoise.noise import add_noise, derive_seed

RELEASED = cli.RELEASED_MODEL


@pytest.fixture(scope="module")
def clean_photo():
    """A 160×200 color crop of a photo bundled with scikit-image, in [0, 1]."""
    return (skimage.data.astronaut()[40:200, 120:320] / 255.0).astype(np.float32)


def total_variation(image):
    return float(np.abs(np.diff(image, axis=0)).mean() + np.abs(np.diff(image, axis=1)).mean())


@pytest.mark.parametrize("model", [cli.RELEASED_MODEL, cli.RELEASED_GRAY], ids=["color", "gray"])
def test_the_provenance_beside_each_released_model_matches_it(model):
    provenance = json.loads(model.with_suffix(".json").read_text())
    assert provenance["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert model.stat().st_size <= 10e6
    assert provenance["preset"].startswith("bench/preset") and len(provenance["commit"].split()[0]) >= 7


def test_denoise_uses_the_released_model_by_default_on_a_camera_jpeg(tmp_path, clean_photo, capsys):
    noisy = add_noise(clean_photo, "camera", 2e-3, derive_seed("released"), camera=CameraSteps(jpeg_quality=Levels(values=(90.0,))))
    Image.fromarray(np.round(noisy * 255).astype(np.uint8)).save(tmp_path / "photo.jpg", quality=95)
    assert cli.main([str(tmp_path / "photo.jpg"), "-o", str(tmp_path / "clean.jpg")]) == 0
    assert "gray model" not in capsys.readouterr().err  # a color model: no per-channel passes
    out = images.read_image(tmp_path / "clean.jpg").pixels
    before = metrics.psnr(clean_photo, images.read_image(tmp_path / "photo.jpg").pixels)
    # +2.2 dB for the model of 5b1a177 (zoomed camera patches: it gains about 1 dB less than its predecessor on
    # synthetic camera noise over a small textured crop, and 1 dB more on real photos: docs/models.md)
    assert metrics.psnr(clean_photo, out) > before + 2


def test_a_larger_sigma_gives_a_smoother_output_monotonically(clean_photo):
    noisy = add_noise(clean_photo, "gaussian", 15.0, derive_seed("strength"))
    variation = [total_variation(Denoiser(RELEASED, sigma=sigma)(noisy)) for sigma in (0, 5, 15, 30, 50)]
    assert all(a > b for a, b in zip(variation, variation[1:])), variation
    assert variation[0] > 1.2 * variation[-1]  # a map that did nothing would leave them equal


def test_sigma_on_a_model_without_a_noise_map_is_reported_unused(tmp_path, clean_photo, capsys):
    from denoise import models

    model = models.dncnn(3, 3, 4)
    model.save(tmp_path / "plain.keras")
    Image.fromarray(np.round(clean_photo * 255).astype(np.uint8)).save(tmp_path / "in.png")
    assert cli.main([str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--model", str(tmp_path / "plain.keras"), "--sigma", "20"]) == 0
    assert "takes no noise level" in capsys.readouterr().err


def test_gray_images_get_the_gray_released_model(tmp_path):
    """A color model on a gray image's replicated channels sees the same noise in every channel and barely
    denoises (docs/models.md); the default picks the released gray model for gray images."""
    clean = (skimage.data.camera()[100:260, 150:350] / 255.0).astype(np.float32)[..., None]
    noisy = add_noise(clean, "gaussian", 25.0, derive_seed("gray"))
    Image.fromarray(np.round(np.clip(noisy[..., 0], 0, 1) * 255).astype(np.uint8)).save(tmp_path / "scan.png")
    assert cli.main([str(tmp_path / "scan.png"), "-o", str(tmp_path / "clean.png")]) == 0
    out = images.read_image(tmp_path / "clean.png").pixels
    assert out.shape == clean.shape
    assert metrics.psnr(clean, out) > metrics.psnr(clean, images.read_image(tmp_path / "scan.png").pixels) + 6
