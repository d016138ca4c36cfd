"""Exported models (ONNX, OpenVINO, LiteRT) run by their engines give the Keras path's outputs, through the
same tiling; metadata travels with them; engine choices and bad requests are clear."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from denoise import engines, export, inference, metrics, models
from denoise.errors import DenoiseError

FILES = {"onnx": "model.onnx", "openvino": "model.xml", "litert": "model.tflite"}
ENGINE_OF = {"onnx": "onnxruntime", "openvino": "openvino", "litert": "litert"}


def random_unet(seed=0, noise_map=True):
    unet = models.unet(1, blocks=1, width=8, noise_map=noise_map, noise_scales=3 if noise_map else 1)  # pooled maps too
    rng = np.random.default_rng(seed)
    unet.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32) for w in unet.get_weights()])
    return unet


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    random_unet().save(folder / "model.keras")
    for file_format, name in FILES.items():
        export.export(folder / "model.keras", file_format, folder / name)
    return folder


def noisy_photo(height, width, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    clean = (0.5 + 0.3 * np.sin(x / 7.0) * np.cos(y / 5.0))[..., None].astype(np.float32)
    return clean, np.clip(clean + rng.normal(0, 25 / 255, clean.shape), 0, 1).astype(np.float32)


def to_8_bit(image):
    return np.round(np.clip(image, 0, 1) * 255)


@pytest.mark.parametrize("file_format", list(FILES))
def test_each_engine_matches_the_keras_path_through_the_same_tiles(exported, file_format):
    keras_path = inference.Denoiser(exported / "model.keras", tile=128, overlap=48, batch=3)
    other = inference.Denoiser(exported / FILES[file_format], tile=128, overlap=48, batch=3, engine=ENGINE_OF[file_format])
    assert other.engine.name == ENGINE_OF[file_format] and other.channels == 1
    for height, width in ((321, 481), (97, 130)):  # tiled (odd sides), and one pass
        clean, noisy = noisy_photo(height, width)
        ours, theirs = keras_path(noisy), other(noisy)
        assert theirs.shape == noisy.shape and np.abs(ours - noisy).mean() > 0.01  # the network does change the image
        assert np.abs(to_8_bit(ours) - to_8_bit(theirs)).max() <= 1
        assert abs(metrics.psnr(clean, to_8_bit(ours) / 255) - metrics.psnr(clean, to_8_bit(theirs) / 255)) < 0.01


def test_metadata_beside_and_inside_the_files(exported):
    for name in FILES.values():
        info = json.loads((exported / f"{name}.json").read_text())
        assert info["channels"] == 1 and info["size_multiple"] == 8 and info["noise_map"] is True
        assert info["trained_precision"] == "float32" and info["input"] == "noisy"
    import onnx

    props = {p.key: p.value for p in onnx.load(str(exported / "model.onnx")).metadata_props}
    assert props["denoise.size_multiple"] == "8" and props["denoise.channels"] == "1"
    import openvino as ov

    assert ov.Core().read_model(str(exported / "model.xml")).get_rt_info(["denoise", "size_multiple"]).astype(str) == "8"
    assert (exported / "model.bin").is_file() and not list(exported.glob(".*"))  # no temporary left


def test_a_bf16_model_is_exported_as_its_float32_twin(tmp_path):
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        trained = random_unet(seed=3, noise_map=False)
    finally:
        keras.config.set_dtype_policy("float32")
    trained.save(tmp_path / "bf16.keras")
    twin = export.float32_twin(trained)
    assert {layer.dtype_policy.name for layer in twin.layers} == {"float32"}
    assert all(np.array_equal(a, b) for a, b in zip(twin.get_weights(), trained.get_weights()))
    export.export(tmp_path / "bf16.keras", "openvino", tmp_path / "bf16.xml")
    assert json.loads((tmp_path / "bf16.xml.json").read_text())["trained_precision"] == "mixed_bfloat16"
    _, image = noisy_photo(64, 64)
    f32 = engines.OpenVINOEngine(tmp_path / "bf16.xml", 2, "f32")
    np.testing.assert_allclose(f32(image[None])[0], inference.predict(twin, image), atol=1e-4)
    auto = engines.OpenVINOEngine(tmp_path / "bf16.xml", 2)  # computes as it was trained where the CPU can
    import openvino as ov

    assert auto.precision == ("bf16" if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES") else "f32")


def test_engine_choice_and_refusals(exported):
    assert engines.choose(exported / "model.onnx") == "openvino"
    assert engines.choose(exported / "model.keras") == "keras"
    with pytest.raises(DenoiseError, match=r"the onnxruntime engine cannot run a \.keras file .*denoise export"):
        engines.choose(exported / "model.keras", "onnxruntime")
    with pytest.raises(DenoiseError, match=r"model\.xml: the litert engine cannot run a \.xml file"):
        engines.choose(exported / "model.xml", "litert")
    with pytest.raises(DenoiseError, match=r"not a model file this tool runs"):
        engines.choose(exported / "model.bin")
    with pytest.raises(DenoiseError, match=r"--format: 'pt' is not one of"):
        export.export(exported / "model.keras", "pt", exported / "model.pt")
    with pytest.raises(DenoiseError, match=r"a onnx model's file name ends in \.onnx"):
        export.export(exported / "model.keras", "onnx", exported / "model.xml")


def test_cli_exports_and_runs_an_export(exported, tmp_path):
    clean, noisy = noisy_photo(90, 120)
    Image.fromarray(to_8_bit(noisy)[..., 0].astype(np.uint8)).save(tmp_path / "in.png")
    cli = [sys.executable, "-m", "denoise.cli"]
    result = subprocess.run([*cli, "export", str(exported / "model.keras"), "--format", "onnx", "-o", str(tmp_path / "m.onnx")],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert (tmp_path / "m.onnx.json").is_file()
    for engine in ("onnxruntime", "keras"):
        model = tmp_path / "m.onnx" if engine != "keras" else exported / "model.keras"
        result = subprocess.run([*cli, str(tmp_path / "in.png"), "-o", str(tmp_path / f"{engine}.png"), "--model", str(model), "--engine", engine],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    outputs = [np.asarray(Image.open(tmp_path / f"{e}.png"), np.float64) for e in ("onnxruntime", "keras")]
    assert np.abs(outputs[0] - outputs[1]).max() <= 1
    bad = subprocess.run([*cli, str(tmp_path / "in.png"), "-o", str(tmp_path / "x.png"), "--model", str(exported / "model.keras"), "--engine", "onnxruntime"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "cannot run a .keras file" in bad.stderr
    assert not (tmp_path / "x.png").exists()


def test_exports_are_byte_identical_run_to_run(exported, tmp_path):
    """Same model, same files, as the export stage runs it (a process each time): tf2onnx's own node and
    dimension names vary from run to run, and export.py renames them by their place in the graph."""
    script = "import sys; from denoise.export import export; [export(sys.argv[1], f, sys.argv[2] + '/' + n) for f, n in %r.items()]" % FILES
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        subprocess.run([sys.executable, "-c", script, str(exported / "model.keras"), str(tmp_path / run)], check=True, capture_output=True)
    for name in FILES.values():
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "model.bin").read_bytes() == (tmp_path / "b" / "model.bin").read_bytes()
