"""Export a trained model to the formats people deploy it in: ONNX, OpenVINO IR, LiteRT (.tflite) and
TensorFlow SavedModel, through Keras's own `model.export` (tf2onnx, OpenVINO's converter and the LiteRT
converter underneath). The exported network is the float32 twin of the trained one (bf16-trained layers
rebuilt in float32, same weights), with dynamic height and width; what a runtime needs to feed it (the
side multiple, channels, the input's name and range) goes into a JSON file beside it, and into the file's
own metadata where the format has a place for it (ONNX metadata_props, OpenVINO rt_info)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from pathlib import Path

import keras
import numpy as np

from .config import EXPORT_SUFFIXES
from .engines import metadata_path
from .errors import DenoiseError
from .inference import load_model
from .models import NoiseLevelMap, model_channels, size_multiple
from .storage import atomic_path



def float32_twin(model: keras.Model) -> keras.Model:
    """The same network with every layer computing in float32 (a mixed_bfloat16 model keeps float32 weights,
    so they carry over exactly); a float32 model comes back as it is."""
    if trained_precision(model) == "float32":
        return model

    def rebuild(layer):
        config = layer.get_config()
        config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    twin = keras.models.clone_model(model, clone_function=rebuild)
    twin.set_weights(model.get_weights())
    return twin


def trained_precision(model: keras.Model) -> str:
    """float32, or the mixed policy (mixed_bfloat16) most of the model's layers compute in."""
    names = [layer.dtype_policy.name for layer in model.layers]
    return max(set(names), key=names.count) if any(name != "float32" for name in names) else "float32"


def metadata(model: keras.Model, source: Path, file_format: str, precision: str) -> dict:
    return {
        "format": file_format,
        "input": model.inputs[0].name,
        "channels": model_channels(model),
        "size_multiple": size_multiple(model),
        "layout": "NHWC, float32 in [0, 1]; height and width any multiples of size_multiple",
        "noise_map": any(isinstance(layer, NoiseLevelMap) for layer in model.layers),
        "trained_precision": precision,
        "source_model": str(source),
        "source_sha256": hashlib.sha256(Path(source).read_bytes()).hexdigest(),
    }


def export(model_path: str | Path, file_format: str, out: str | Path) -> Path:
    """Export the .keras model at model_path as `file_format` to `out` (written atomically, with its
    metadata JSON beside it); returns the exported path."""
    if file_format not in EXPORT_SUFFIXES:
        raise DenoiseError(f"--format: {file_format!r} is not one of {', '.join(EXPORT_SUFFIXES)}")
    out = Path(out)
    suffix = EXPORT_SUFFIXES[file_format]
    if suffix and out.suffix != suffix:
        raise DenoiseError(f"{out}: a {file_format} model's file name ends in {suffix}")
    trained = load_model(model_path)
    model = float32_twin(trained)
    info = metadata(model, Path(model_path), file_format, trained_precision(trained))
    side = 2 * info["size_multiple"]
    model(np.zeros((1, side, side, info["channels"]), np.float32))  # Keras exports only a model that has been called
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as work, _tf2onnx_unoptimized(file_format):
        made = Path(work) / out.name
        model.export(str(made), format="tf_saved_model" if file_format == "saved_model" else file_format, verbose=False)
        if file_format == "onnx":
            _onnx_metadata(made, info)
        if file_format == "openvino":  # model.xml and its weights, model.bin
            _openvino_metadata(made, info)
            with atomic_path(out.with_suffix(".bin")) as tmp:
                made.with_suffix(".bin").rename(tmp)
        with atomic_path(out) as tmp:
            made.rename(tmp)
    with atomic_path(metadata_path(out)) as tmp:
        tmp.write_text(json.dumps(info, indent=1) + "\n")
    return out


@contextlib.contextmanager
def _tf2onnx_unoptimized(file_format: str):
    """Keras's ONNX export with tf2onnx's own graph optimizers off. They walk sets of graph nodes, whose order
    changes from run to run, and so give different graphs for the same model: in 2 of 56 exports of the test
    U-Net here, tf2onnx 1.17 dropped its last Squeeze, and the model gave (1, batch, H, W, C) instead of
    (batch, H, W, C); one more gave a third graph. ONNX Runtime optimizes the graph itself when it loads the
    file, and its speed did not change measurably (docs/benchmark.md, Engines)."""
    if file_format != "onnx":
        yield
        return
    from tf2onnx import optimizer

    table = dict(optimizer._optimizers)  # noqa: SLF001 -- tf2onnx has no switch for it in from_function
    optimizer._optimizers.clear()
    try:
        yield
    finally:
        optimizer._optimizers.update(table)


def _onnx_metadata(path: Path, info: dict) -> None:
    import onnx

    proto = onnx.load(str(path))
    _canonical_names(proto.graph)
    onnx.helper.set_model_props(proto, {f"denoise.{key}": str(value) for key, value in info.items()})
    onnx.save(proto, str(path))


def _canonical_names(graph) -> None:
    """Name nodes and internal tensors by their place in the graph, so that the same network gives the same
    bytes: tf2onnx numbers them from counters that differ from run to run (the graph itself does not)."""
    keep = {value.name for value in (*graph.input, *graph.output)}
    weights = {tensor.name for tensor in graph.initializer}
    names: dict[str, str] = {}
    for k, node in enumerate(graph.node):
        node.name = f"node{k}"
        for name in node.input:
            if name in weights and name not in names:
                names[name] = f"weight{len(names)}"
        for j, name in enumerate(node.output):
            if name not in keep:
                names[name] = f"node{k}:{j}"
    for node in graph.node:
        node.input[:] = [names.get(name, name) for name in node.input]
        node.output[:] = [names.get(name, name) for name in node.output]
    for collection in (graph.initializer, graph.value_info):
        items = sorted(collection, key=lambda item: names.get(item.name, item.name))
        for item in items:
            item.name = names.get(item.name, item.name)
        del collection[:]
        collection.extend(items)
    symbols: dict[str, str] = {}  # tf2onnx's unk__N dynamic dimensions, counted up across runs too
    for value in (*graph.input, *graph.output, *graph.value_info):
        for k, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.dim_param:
                if value in graph.input or value in graph.output:
                    symbols.setdefault(dim.dim_param, ("batch", "height", "width")[k] if k < 3 else f"dim{len(symbols)}")
                dim.dim_param = symbols.setdefault(dim.dim_param, f"dim{len(symbols)}")
    graph.doc_string = ""


def _openvino_metadata(path: Path, info: dict) -> None:
    import openvino as ov

    network = ov.Core().read_model(str(path))
    for key, value in info.items():
        network.set_rt_info(str(value), ["denoise", key])
    tagged = path.with_name("tagged-" + path.name)  # not over the files being read
    ov.serialize(network, str(tagged))  # as Keras wrote it: float32 weights
    del network
    tagged.replace(path)
    tagged.with_suffix(".bin").replace(path.with_suffix(".bin"))
