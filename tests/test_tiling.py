import numpy as np
import pytest

from denoise import metrics, models, tiling


@pytest.fixture(scope="module")
def model():
    model = models.dncnn(1, 5, 8)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.2, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


@pytest.mark.parametrize("height, width", [(150, 170), (61, 200), (97, 97)])
def test_tiled_equals_untiled(model, smooth_image, height, width):
    image = smooth_image(height, width)
    whole = tiling.predict(model, image)
    tiled = tiling.predict_tiled(model, image, tile=48, overlap=16, batch_size=3)
    assert tiled.shape == image.shape
    assert metrics.psnr(whole, tiled) > 60  # 0.05 dB of any realistic PSNR
    np.testing.assert_allclose(tiled, whole, atol=2e-3)


@pytest.mark.parametrize("full_width, tile, overlap", [(0, 270, 135), (4, 320, 156)])  # overlap/3 ≥ the receptive radius, 44 or 50 pixels
def test_unet_tiles_on_its_own_pixel_grid(smooth_image, full_width, tile, overlap):
    """A strided network is not shift-invariant: tiles must start on multiples of 8 to equal the whole-image pass."""
    unet = models.unet(1, blocks=1, width=4, full_width=full_width)
    rng = np.random.default_rng(1)
    unet.set_weights([rng.normal(0, 0.15, w.shape).astype(np.float32) for w in unet.get_weights()])
    for height, width in ((301, 287), (90, 405)):  # odd sides; one side shorter than the tile
        image = smooth_image(height, width)
        tiled = tiling.predict_tiled(unet, image, tile=tile, overlap=overlap, batch_size=2)
        assert tiled.shape == image.shape
        np.testing.assert_allclose(tiled, tiling.predict(unet, image), atol=1e-4)


def test_tiles_report_progress(model, smooth_image):
    done = []
    tiling.predict_tiled(model, smooth_image(100, 100), tile=48, overlap=8, batch_size=2, progress=done.append)
    assert sum(done) == 9


def test_seed_model_tiles_with_its_size_multiple(smooth_image):
    seed = models.seed_model(1)
    image = smooth_image(90, 75)
    tiled = tiling.predict_tiled(seed, image, tile=50, overlap=16)
    assert tiled.shape == image.shape
    assert metrics.psnr(tiling.predict(seed, image), tiled) > 40
