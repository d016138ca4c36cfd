import numpy as np
import pytest

import keras

from denoise import inference, metrics, models
from denoise.errors import DenoiseError


@pytest.fixture(scope="module")
def model():
    model = models.dncnn(1, 5, 8)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.2, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


@pytest.mark.parametrize("height, width", [(150, 170), (61, 200), (97, 97)])
def test_tiled_equals_untiled(model, smooth_image, height, width):
    image = smooth_image(height, width)
    whole = inference.predict(model, image)
    tiled = inference.predict_tiled(model, image, tile=48, overlap=16, batch_size=3)
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
        tiled = inference.predict_tiled(unet, image, tile=tile, overlap=overlap, batch_size=2)
        assert tiled.shape == image.shape
        np.testing.assert_allclose(tiled, inference.predict(unet, image), atol=1e-4)


def test_tiles_report_progress(model, smooth_image):
    done = []
    inference.predict_tiled(model, smooth_image(100, 100), tile=48, overlap=8, batch_size=2, progress=done.append)
    assert sum(done) == 9


def random_weights(model, scale, seed=0):
    """Random kernels, zero biases."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, scale, w.shape).astype(np.float32) if w.ndim > 1 else np.zeros_like(w) for w in model.get_weights()])
    return model


def test_seed_model_tiles_with_its_size_multiple(smooth_image):
    """With random weights the seed model's output varies across the image (an untrained one is nearly
    constant, which any tiling would reproduce); tiles on multiples of 4 with overlap/3 past its receptive
    radius (13 pixels) equal the whole-image pass, and without overlap the seams show."""
    seed = random_weights(models.seed_model(1), 0.2)
    image = smooth_image(150, 171) + np.random.default_rng(3).normal(0, 0.1, (150, 171, 1)).astype(np.float32)
    whole = inference.predict(seed, image)
    assert whole.std() > 0.05 and 0.01 < whole.mean() < 0.99
    tiled = inference.predict_tiled(seed, image, tile=96, overlap=48)
    assert tiled.shape == image.shape
    np.testing.assert_allclose(tiled, whole, atol=1e-4)
    seams = inference.predict_tiled(seed, image, tile=96, overlap=0)
    assert np.abs(seams - whole).max() > 0.01


def test_views_are_the_eight_symmetries_each_turned_back():
    image = np.random.default_rng(0).random((23, 37, 1)).astype(np.float32)  # odd, not square
    seen = []
    outputs = inference.views(lambda view: seen.append(view) or view, image, 8)
    assert all(np.array_equal(out, image) for out in outputs)  # each output back in the image's orientation
    assert np.array_equal(seen[0], image) and len({(v.shape, v.tobytes()) for v in seen}) == 8
    assert [v.shape for v in seen[:4]] == [image.shape] * 4  # 2 or 4 views keep the shape: one traced function


def test_self_ensemble_cancels_an_error_that_turns_with_the_image(smooth_image):
    """A stand-in denoiser whose error is a left-to-right ramp: turned 180°, the ramp runs the other way, so the
    mean of the two views is exact; a single pass is not."""
    image = smooth_image(24, 40)

    def ramped(view):
        return view + np.linspace(-0.1, 0.1, view.shape[1], dtype=np.float32)[None, :, None]

    assert np.abs(inference.self_ensemble(ramped, image, 1) - image).max() > 0.09
    for count in (2, 4, 8):
        np.testing.assert_allclose(inference.self_ensemble(ramped, image, count), image, atol=1e-6)


def test_self_ensemble_of_a_symmetric_filter_is_the_filter(smooth_image):
    from scipy.ndimage import uniform_filter

    image = smooth_image(31, 45)
    blur = lambda view: uniform_filter(view, size=(3, 3, 1), mode="reflect")  # noqa: E731
    np.testing.assert_allclose(inference.self_ensemble(blur, image, 8), blur(image), atol=1e-6)


def test_model_self_ensemble_is_the_mean_of_its_views(smooth_image):
    unet = models.unet(1, blocks=1, width=4, full_width=4)
    rng = np.random.default_rng(2)
    unet.set_weights([rng.normal(0, 0.15, w.shape).astype(np.float32) for w in unet.get_weights()])
    image = smooth_image(61, 45)  # odd sides: each view is padded to multiples of 8 on its own
    turned = np.ascontiguousarray(image[::-1, ::-1])
    expected = (inference.predict(unet, image) + inference.predict(unet, turned)[::-1, ::-1]) / 2
    np.testing.assert_allclose(inference.predict(unet, image, ensemble=2), expected, atol=1e-6)
    assert inference.predict(unet, image, ensemble=8).shape == image.shape
    with pytest.raises(ValueError, match="self-ensemble size 3"):
        inference.predict(unet, image, ensemble=3)


def test_saved_model_loads_and_missing_model_says_what_to_do(tmp_path):
    models.dncnn(1, 3, 4).save(tmp_path / "m.keras")
    assert models.model_channels(inference.load_model(tmp_path / "m.keras")) == 1
    with pytest.raises(DenoiseError, match="run `make repro`"):
        inference.load_model(tmp_path / "missing.keras")


def test_model_carrying_python_code_is_refused(tmp_path):
    inputs = keras.Input((None, None, 1))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(DenoiseError, match="cannot load model"):
        inference.load_model(tmp_path / "lambda.keras")


def test_denoiser_converts_channels_and_counts_its_tiles(smooth_image):
    gray = random_weights(models.unet(1, blocks=1, width=4), 0.15)
    color = smooth_image(70, 90, channels=3)
    denoiser = inference.Denoiser(gray, tile=48, overlap=16, batch=2, ensemble=2)
    done = []
    out = denoiser(color, progress=done.append)
    assert out.shape == color.shape and sum(done) == denoiser.tiles_for(color)
    for c in range(3):  # each channel on its own, as the gray model's ×2 self-ensemble
        np.testing.assert_allclose(out[..., c : c + 1], inference.Denoiser(gray, 48, 16, 2, 2)(color[..., c : c + 1]), atol=1e-6)
    assert denoiser.notes == {"gray model on a color image: each channel is denoised on its own"}
    with pytest.raises(DenoiseError, match="self-ensemble size 3"):
        inference.Denoiser(gray, ensemble=3)


def identity(channels):
    """A DnCNN with zero weights predicts zero noise, so it returns its input exactly."""
    model = models.dncnn(channels, 3, 4)
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    return model


def test_tile_count_matches_the_tiles_denoised():
    denoiser = inference.Denoiser(identity(1), tile=48, overlap=15, batch=2)
    pixels = np.random.default_rng(3).random((100, 130, 3)).astype(np.float32)
    done = []
    denoiser(pixels, progress=done.append)
    assert sum(done) == denoiser.tiles_for(pixels) == 3 * 12


def test_self_ensemble_counts_the_tiles_of_every_view_and_keeps_the_image():
    denoiser = inference.Denoiser(identity(1), tile=48, overlap=15, batch=2, ensemble=8)
    pixels = np.random.default_rng(3).random((100, 130, 1)).astype(np.float32)
    done = []
    out = denoiser(pixels, progress=done.append)
    assert sum(done) == denoiser.tiles_for(pixels) == 8 * 12  # 3 × 4 tiles a view, turned or not
    np.testing.assert_allclose(out, pixels, atol=1e-6)  # every view turned back in place


def test_color_model_on_a_gray_image_averages_back_to_gray():
    pixels = np.random.default_rng(4).random((20, 30, 1)).astype(np.float32)
    denoiser = inference.Denoiser(identity(3))
    np.testing.assert_allclose(denoiser(pixels), pixels, atol=1e-6)
    assert denoiser.notes == {"color model on a gray image: denoised as RGB with equal channels, then averaged back to gray"}
