"""Stage export: the trained model in the formats people deploy (export.formats: onnx, openvino,
openvino_int8, litert, saved_model), each with its metadata JSON, in one folder. The int8 model's ranges are
set on noisy training patches (export.calibration_*)."""

from denoise.config import EXPORT_FILES, load_params
from denoise.datasets import load_split
from denoise.errors import exit_on_error
from denoise.export import export
from denoise.storage import atomic_path


@exit_on_error
def main():
    params = load_params()
    config = params.export
    with atomic_path("models/export") as folder:
        folder.mkdir()
        for file_format in config.formats:
            noisy = load_split("data/split", "train")[1] if file_format == "openvino_int8" else None
            path = export("models/model.keras", file_format, folder / EXPORT_FILES[file_format], noisy,
                          config.calibration_patches, config.calibration_size, config.seed)
            print(f"exported {file_format}: models/export/{path.name}")


if __name__ == "__main__":
    main()
