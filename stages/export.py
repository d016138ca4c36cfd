"""Stage export: the trained model in the formats people deploy (export.formats: onnx, openvino, litert,
saved_model), each with its metadata JSON, in one folder."""

from denoise.config import EXPORT_SUFFIXES, load_params
from denoise.errors import exit_on_error
from denoise.export import export
from denoise.storage import atomic_path


@exit_on_error
def main():
    params = load_params()
    with atomic_path("models/export") as folder:
        folder.mkdir()
        for file_format in params.export.formats:
            path = export("models/model.keras", file_format, folder / f"model{EXPORT_SUFFIXES[file_format] or '_saved_model'}")
            print(f"exported {file_format}: models/export/{path.name}")


if __name__ == "__main__":
    main()
