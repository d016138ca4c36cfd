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


def test_views_are_the_eight_symmetries_each_turned_back():
    image = np.random.default_rng(0).random((23, 37, 1)).astype(np.float32)  # odd, not square
    seen = []
    outputs = tiling.views(lambda view: seen.append(view) or view, image, 8)
    assert all(np.array_equal(out, image) for out in outputs)  # each output back in the image's orientation
    assert np.array_equal(seen[0], image) and len({(v.shape, v.tobytes()) for v in seen}) == 8
    assert [v.shape for v in seen[:4]] == [image.shape] * 4  # 2 or 4 views keep the shape: one traced function


def test_self_ensemble_cancels_an_error_that_turns_with_the_image(smooth_image):
    """A stand-in denoiser whose error is a left-to-right ramp: turned 180°, the ramp runs the other way, so the
    mean of the two views is exact; a single pass is not."""
    image = smooth_image(24, 40)

    def ramped(view):
        return view + np.linspace(-0.1, 0.1, view.shape[1], dtype=np.float32)[None, :, None]

    assert np.abs(tiling.self_ensemble(ramped, image, 1) - image).max() > 0.09
    for count in (2, 4, 8):
        np.testing.assert_allclose(tiling.self_ensemble(ramped, image, count), image, atol=1e-6)


def test_self_ensemble_of_a_symmetric_filter_is_the_filter(smooth_image):
    from scipy.ndimage import uniform_filter

    image = smooth_image(31, 45)
    blur = lambda view: uniform_filter(view, size=(3, 3, 1), mode="reflect")  # noqa: E731
    np.testing.assert_allclose(tiling.self_ensemble(blur, image, 8), blur(image), atol=1e-6)


def test_model_self_ensemble_is_the_mean_of_its_views(smooth_image):
    unet = models.unet(1, blocks=1, width=4, full_width=4)
    rng = np.random.default_rng(2)
    unet.set_weights([rng.normal(0, 0.15, w.shape).astype(np.float32) for w in unet.get_weights()])
    image = smooth_image(61, 45)  # odd sides: each view is padded to multiples of 8 on its own
    turned = np.ascontiguousarray(image[::-1, ::-1])
    expected = (tiling.predict(unet, image) + tiling.predict(unet, turned)[::-1, ::-1]) / 2
    np.testing.assert_allclose(tiling.predict(unet, image, ensemble=2), expected, atol=1e-6)
    assert tiling.predict(unet, image, ensemble=8).shape == image.shape
    with pytest.raises(ValueError, match="self-ensemble size 3"):
        tiling.predict(unet, image, ensemble=3)
