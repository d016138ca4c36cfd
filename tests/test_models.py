import keras
import numpy as np
import pytest

from denoise import inference, models
from denoise.config import ModelConfig
from denoise.errors import ConfigError


@pytest.mark.parametrize("name, multiple", [("seed", 4), ("dncnn", 1), ("unet", 8)])
@pytest.mark.parametrize("height, width", [(33, 47), (8, 9), (64, 64)])
def test_any_size_keeps_its_shape(name, multiple, height, width, smooth_image):
    model = models.build_model(ModelConfig(name=name, depth=4, width=8), channels=1)
    assert models.size_multiple(model) == multiple
    out = inference.predict(model, smooth_image(height, width))
    assert out.shape == (height, width, 1) and np.isfinite(out).all()


@pytest.mark.parametrize("name, full_width", [("dncnn", 0), ("unet", 0), ("unet", 4)])
def test_residual_models_return_their_input_when_they_predict_no_noise(name, full_width, smooth_image):
    image = smooth_image(21, 30, channels=3)
    model = models.build_model(ModelConfig(name=name, depth=3 if name == "dncnn" else 1, width=4, full_width=full_width), channels=3)
    for layer in model.layers:  # zero weights: predicted noise is zero, output equals input
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    np.testing.assert_allclose(inference.predict(model, image), image, atol=1e-6)


def test_seed_model_is_bounded_and_has_five_conv_layers(smooth_image):
    image = smooth_image(16, 16, channels=3)
    seed = models.seed_model(3)
    out = inference.predict(seed, image)
    assert out.min() >= 0 and out.max() <= 1
    assert sum(isinstance(layer, keras.layers.Conv2D) for layer in seed.layers) == 5


def test_unet_sees_far_and_is_cheaper_than_dncnn():
    """The U-Net's receptive field is 88 pixels (DnCNN-17's is 35) at under a fifth of its arithmetic per
    pixel at width 64 (the presets), about a tenth at width 48 (a levers row)."""
    unet = models.unet(1, blocks=1, width=64)
    # Averaging kernels and no biases: every path carries an impulse, and nothing else reaches the output.
    unet.set_weights([np.full_like(w, 1 / np.prod(w.shape[:-1])) if w.ndim > 1 else np.zeros_like(w) for w in unet.get_weights()])
    impulse = np.zeros((1, 128, 128, 1), np.float32)
    impulse[0, 64, 64] = 1.0
    reached = np.asarray(unet(impulse) - impulse)[0, :, :, 0] != 0
    rows = np.flatnonzero(reached.any(axis=1))
    assert rows.max() - rows.min() + 1 == 88  # the figure the README and the model's docstring quote
    dncnn = _macs_per_pixel(models.dncnn(1, 17, 64))
    assert _macs_per_pixel(unet) < dncnn / 5
    assert _macs_per_pixel(models.unet(1, blocks=1, width=48)) < dncnn / 9.5  # the 48-channel levers row: about a tenth


def _macs_per_pixel(model: keras.Model) -> float:
    total, scale = 0.0, 1.0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            total += np.prod(layer.kernel.shape) / scale
            scale /= layer.strides[0] ** 2
        elif isinstance(layer, keras.layers.Conv2D):
            scale *= layer.strides[0] ** 2
            total += np.prod(layer.kernel.shape) / scale
    return total


@pytest.mark.parametrize("channels", [1, 3])
def test_noise_level_map_estimates_sigma_and_ignores_smooth_content(channels, smooth_image):
    """Immerkær's estimate: within 5 % of the true σ on a smooth image, near 0 without noise, rising with σ."""
    image = np.stack([smooth_image(180, 180, channels=channels)] * 2)  # two images: one estimate each
    rng = np.random.default_rng(0)
    estimates = []
    for sigma in (0, 5, 15, 25, 50):
        noisy = image + rng.normal(0, sigma / 255, image.shape).astype(np.float32)
        noisy[1] = image[1]  # the second image stays clean: its map must not see the first one's noise
        level = np.asarray(models.NoiseLevelMap()(noisy)) * 50
        assert level.shape == (2, 180, 180, 1) and np.ptp(level[0]) == 0
        assert level[1].max() < 0.6
        estimates.append(level[0, 0, 0, 0])
        if sigma:
            assert abs(estimates[-1] - sigma) < 0.05 * sigma
    assert estimates == sorted(estimates)


def test_noise_level_maps_at_coarser_scales_see_correlated_noise(smooth_image):
    """With scales: white noise reads about the same σ at every scale; noise low-passed as a camera's noise
    reduction leaves it (same σ per pixel) reads far lower at full resolution and rises scale by scale,
    above the white noise's reading at the coarsest; a set level fills every map."""
    from scipy.ndimage import gaussian_filter

    image = smooth_image(256, 256, channels=3)
    rng = np.random.default_rng(1)
    white = rng.normal(0, 10 / 255, image.shape).astype(np.float32)
    blotchy = gaussian_filter(rng.normal(0, 1, image.shape), (1.5, 1.5, 0)).astype(np.float32)
    blotchy *= (10 / 255) / blotchy.std()
    layer = models.NoiseLevelMap(scales=3)
    read_white, read_blotchy = (np.asarray(layer((image + noise)[None]))[0, 0, 0] * 50 for noise in (white, blotchy))
    assert np.allclose(read_white, 10, rtol=0.1)
    assert read_blotchy[0] < 0.5 * read_white[0] and read_blotchy[0] < read_blotchy[1] < read_blotchy[2]
    assert read_blotchy[2] > read_white[2]
    fixed = np.asarray(models.NoiseLevelMap(sigma=20, scales=3)(image[None]))
    assert fixed.shape == (1, 256, 256, 3) and np.allclose(fixed * 50, 20)
    with pytest.raises(ConfigError, match="train.model.noise_scales: 3 maps need noise_map: true"):
        ModelConfig(noise_scales=3).validate("train.model")


def test_unet_with_noise_map_saves_loads_and_needs_the_unet(tmp_path, smooth_image):
    image = smooth_image(33, 47) + np.random.default_rng(0).normal(0, 0.1, (33, 47, 1)).astype(np.float32)
    model = models.build_model(ModelConfig(name="unet", depth=1, width=4, noise_map=True), channels=1)
    model.save(tmp_path / "m.keras")
    np.testing.assert_array_equal(inference.predict(inference.load_model(tmp_path / "m.keras"), image), inference.predict(model, image))
    with pytest.raises(ConfigError, match="train.model.noise_map: only the unet model"):
        ModelConfig(name="dncnn", depth=5, noise_map=True).validate("train.model")


@pytest.mark.parametrize("height, width", [(33, 47), (8, 9)])
def test_unet_with_full_resolution_blocks_keeps_shapes_saves_loads_and_needs_the_unet(tmp_path, smooth_image, height, width):
    image = smooth_image(height, width) + np.random.default_rng(0).normal(0, 0.1, (height, width, 1)).astype(np.float32)
    plain = models.build_model(ModelConfig(name="unet", depth=1, width=8), channels=1)
    model = models.build_model(ModelConfig(name="unet", depth=1, width=8, full_width=4), channels=1)
    assert models.size_multiple(model) == 8 and model.count_params() > plain.count_params()
    full_res = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D) and layer.kernel_size == (3, 3) and layer.filters in (1, 4)]
    assert len(full_res) == 6  # entry conv, two blocks of two, exit conv
    model.save(tmp_path / "m.keras")
    out = inference.predict(inference.load_model(tmp_path / "m.keras"), image)
    assert out.shape == image.shape
    np.testing.assert_array_equal(out, inference.predict(model, image))
    with pytest.raises(ConfigError, match="train.model.full_width: only the unet model"):
        ModelConfig(name="dncnn", depth=5, full_width=16).validate("train.model")


def test_residual_blocks_start_as_identities(smooth_image):
    """Each block's second convolution starts at zero, so its branch adds nothing until trained: whatever
    its first convolution holds, the freshly built network's output is the same. The control is the same
    network with one second convolution not at zero: then the output moves."""
    image = smooth_image(32, 40)[None]
    model = models.build_model(ModelConfig(name="unet", depth=2, width=4, full_width=4), channels=1)
    before = np.asarray(model(image))
    first_convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D) and layer.get_config()["activation"] == "relu"]
    assert len(first_convs) == 2 * 5 + 2  # two blocks at each of the five level passes, one at each full-resolution end
    rng = np.random.default_rng(0)
    for layer in first_convs:
        layer.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()])
    np.testing.assert_array_equal(np.asarray(model(image)), before)
    second = model.get_layer(index=model.layers.index(first_convs[0]) + 1)
    second.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in second.get_weights()])
    assert np.abs(np.asarray(model(image)) - before).max() > 1e-3
