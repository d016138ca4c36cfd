"""Engines: what runs the network on a batch of tiles. Keras runs a trained .keras model; ONNX Runtime,
OpenVINO and LiteRT run the files `denoise export` writes. The inference module's padding, tiling,
blending and self-ensemble are the same whichever engine runs the tiles, so their outputs agree to
float rounding (tests/test_engines.py).

Every engine is a callable: N×H×W×C float32 in [0, 1] -> N×H×W×C float32, with `channels` and
`multiple` (input sides must be multiples of it). Only the engine asked for is imported: ONNX Runtime
or OpenVINO start without TensorFlow or JAX.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

from .errors import DenoiseError
from .parallel import workers

ENGINES = ("keras", "onnxruntime", "openvino", "litert")
PACKAGES = {"keras": "keras", "onnxruntime": "onnxruntime", "openvino": "openvino", "litert": "ai_edge_litert"}
# the engines that can run each kind of file, fastest first on this machine's CPU (make bench-cli)
BY_SUFFIX = {".keras": ("keras",), ".onnx": ("openvino", "onnxruntime"), ".xml": ("openvino",), ".tflite": ("litert",)}


def metadata_path(path: str | Path) -> Path:
    """The JSON file beside an exported model (model.onnx -> model.onnx.json; a SavedModel folder -> folder.json)."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def read_metadata(path: str | Path) -> dict:
    side = metadata_path(path)
    if not side.is_file():
        raise DenoiseError(f"{path}: no {side.name} beside it (export the model with `denoise export`)")
    return json.loads(side.read_text())


class KerasEngine:
    name = "keras"

    def __init__(self, model):
        from .models import model_channels, size_multiple

        self.model, self.channels, self.multiple = model, model_channels(model), size_multiple(model)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        # predict_on_batch runs a traced (graph) function: on 2 CPU cores half the time of an eager call,
        # whose per-layer dispatch cost as much as the arithmetic (0.10 against 0.18 s for a 481×321 image).
        return np.asarray(self.model.predict_on_batch(batch), dtype=np.float32)


class _Exported:
    """An exported model: its metadata (export.py writes it beside the file) and the engine's session."""

    def __init__(self, path: Path):
        self.info = read_metadata(path)
        self.path, self.channels, self.multiple = path, int(self.info["channels"]), int(self.info["size_multiple"])


class OnnxRuntimeEngine(_Exported):
    name = "onnxruntime"

    def __init__(self, path: Path, threads: int):
        super().__init__(path)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: np.ascontiguousarray(batch, np.float32)})[0]


class OpenVINOEngine(_Exported):
    name = "openvino"

    def __init__(self, path: Path, threads: int, precision: str = "auto"):
        """precision auto: bf16 for a model trained in bf16 on a CPU that computes in it (as the Keras path
        does: outputs within one 8-bit step of it, tests/test_engines.py), else f32."""
        super().__init__(path)
        import openvino as ov
        import openvino.properties as props
        import openvino.properties.hint as hints

        core = ov.Core()
        if precision == "auto":
            bf16 = "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES") and "bfloat16" in self.info.get("trained_precision", "")
            precision = "bf16" if bf16 else "f32"
        self.precision = precision

        config = {
            hints.performance_mode: hints.PerformanceMode.LATENCY,
            hints.inference_precision: {"f32": ov.Type.f32, "bf16": ov.Type.bf16}[precision],
            props.inference_num_threads: threads,
        }
        self.compiled = core.compile_model(str(path), "CPU", config)
        self.request = self.compiled.create_infer_request()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.request.infer({0: np.ascontiguousarray(batch, np.float32)})
        return self.request.get_output_tensor(0).data.copy()


class LiteRTEngine(_Exported):
    name = "litert"

    def __init__(self, path: Path, threads: int):
        super().__init__(path)
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.shape: tuple | None = None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape != self.shape:
            self.interpreter.resize_tensor_input(self.input, batch.shape)
            self.interpreter.allocate_tensors()
            self.shape = batch.shape
        self.interpreter.set_tensor(self.input, np.ascontiguousarray(batch, np.float32))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output).copy()


def installed(engine: str) -> bool:
    return importlib.util.find_spec(PACKAGES[engine]) is not None


def choose(path: Path, engine: str = "auto") -> str:
    """The engine to run the model file at `path`: `engine` itself, checked against the file's kind, or
    for auto the fastest installed one that can run it."""
    able = BY_SUFFIX.get(path.suffix.lower())
    if able is None:
        raise DenoiseError(f"{path}: not a model file this tool runs (.keras, or an export: {', '.join(s for s in BY_SUFFIX if s != '.keras')})")
    if engine == "auto":
        for candidate in able:
            if installed(candidate):
                return candidate
        raise DenoiseError(f"{path}: no engine for it is installed; pip install {PACKAGES[able[0]]}")
    if engine not in ENGINES:
        raise DenoiseError(f"--engine: {engine!r} is not one of auto, {', '.join(ENGINES)}")
    if engine not in able:
        hint = "; export it first: denoise export MODEL --format onnx -o model.onnx" if path.suffix == ".keras" else ""
        raise DenoiseError(f"{path}: the {engine} engine cannot run a {path.suffix} file (it runs: {', '.join(able)}){hint}")
    if not installed(engine):
        raise DenoiseError(f"--engine {engine}: not installed; pip install {PACKAGES[engine]}")
    return engine


def open_engine(model, engine: str = "auto", threads: int | None = None):
    """An engine for a model: a loaded Keras model, an engine (returned as it is), or a file path."""
    if callable(model) and hasattr(model, "multiple"):
        return model
    if not isinstance(model, (str, Path)):
        return KerasEngine(model)
    path = Path(model)
    if not path.exists():
        raise DenoiseError(f"{path}: no model there; run `make repro` (or `dvc repro`) first to train one")
    chosen = choose(path, engine)
    if chosen == "keras":
        from .inference import load_model

        return KerasEngine(load_model(path))
    kind = {"onnxruntime": OnnxRuntimeEngine, "openvino": OpenVINOEngine, "litert": LiteRTEngine}[chosen]
    try:
        return kind(path, threads or workers())
    except DenoiseError:
        raise
    except Exception as error:  # noqa: BLE001 - a runtime's own error on a bad file: one line, naming it
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DenoiseError(f"{path}: the {chosen} engine cannot load it ({reason})") from None
