import keras
import numpy as np
import pytest

from denoise import models, tiling
from denoise.config import TrainConfig
from denoise.errors import DenoiseError


@pytest.mark.parametrize("name, multiple", [("seed", 4), ("dncnn", 1)])
@pytest.mark.parametrize("height, width", [(33, 47), (8, 9), (64, 64)])
def test_any_size_keeps_its_shape(name, multiple, height, width, smooth_image):
    model = models.build_model(TrainConfig(model=name, depth=4, width=8), channels=1)
    assert models.size_multiple(model) == multiple
    out = tiling.predict(model, smooth_image(height, width))
    assert out.shape == (height, width, 1) and np.isfinite(out).all()


def test_dncnn_is_residual_and_seed_is_bounded(smooth_image):
    image = smooth_image(16, 16, channels=3)
    dncnn = models.build_model(TrainConfig(model="dncnn", depth=3, width=4), channels=3)
    for layer in dncnn.layers:  # zero weights: predicted noise is zero, output equals input
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    np.testing.assert_allclose(tiling.predict(dncnn, image), image, atol=1e-6)
    seed = models.seed_model(3)
    out = tiling.predict(seed, image)
    assert out.min() >= 0 and out.max() <= 1
    assert sum(isinstance(layer, keras.layers.Conv2D) for layer in seed.layers) == 5


def test_saved_model_loads_and_missing_model_says_what_to_do(tmp_path):
    model = models.dncnn(1, 3, 4)
    model.save(tmp_path / "m.keras")
    assert models.model_channels(models.load_model(tmp_path / "m.keras")) == 1
    with pytest.raises(DenoiseError, match="run `make repro`"):
        models.load_model(tmp_path / "missing.keras")


def test_model_carrying_python_code_is_refused(tmp_path):
    inputs = keras.Input((None, None, 1))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(DenoiseError, match="cannot load model"):
        models.load_model(tmp_path / "lambda.keras")
