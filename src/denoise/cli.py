"""The `denoise` command: clean your own photos, of any size, with a trained model."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import images
from .config import ENSEMBLE_SIZES
from .engines import ENGINES
from .errors import DenoiseError
from .storage import atomic_path

FORMATS = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif", "bmp": ".bmp"}
# the released models (docs/models.md), inside the repository: color (blind, Gaussian + camera noise) for color
# images, gray (blind, Gaussian) for gray ones; a color model on a gray image's replicated channels meets noise
# that is identical in every channel, unlike anything it trained on, and barely denoises it (docs/models.md)
RELEASED = Path(__file__).resolve().parents[2] / "models" / "released"
RELEASED_MODEL, RELEASED_GRAY = RELEASED / "photo.keras", RELEASED / "gray.keras"
PILLOW_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}
EXAMPLES = """examples:
  denoise photo.jpg -o photo-clean.jpg                # the released photo model, nothing to train
  denoise photo.jpg -o smoother.jpg --sigma 30        # stronger (higher) or weaker (lower) denoising
  denoise holiday/ -o holiday-clean/ --tile 768
  denoise scan.tif -o scan-clean.png --format png --model models/model.keras   # the pipeline's own model
  denoise noisy.png -o clean.png --sigma auto
  denoise photo.png -o photo-clean.png --self-ensemble 2   # as bench/results.md's model row: twice the time
  denoise export models/model.keras --format onnx -o model.onnx   # for ONNX Runtime, OpenVINO, apps
  denoise photos/ -o clean/ --model models/export/model.xml   # the OpenVINO export (make repro writes it)

exit status: 0 when every file was written; 1 when any file failed or was skipped; 2 for bad arguments."""


@dataclass
class Job:
    source: Path
    target: Path


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="denoise",
        description="Remove noise from photos with a trained convolutional network. Files of any size are processed in "
        "overlapping tiles, so memory stays bounded. Outputs keep each input's size, mode (gray, RGB, alpha, 8/16-bit) "
        "and format, and are written atomically; inputs are never overwritten.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files (png, jpg, tif, bmp) or folders, searched recursively")
    parser.add_argument("-o", "--output", required=True, metavar="OUTPUT", help="output file (for one input file) or folder (mirrors the input tree)")
    parser.add_argument("--model", default=None, help="trained .keras model, or an exported .onnx / .xml (OpenVINO) / .tflite "
                        "(default: the released models, models/released/photo.keras for color images and gray.keras for gray ones; "
                        "`make repro` trains models/model.keras)")
    parser.add_argument("--engine", default="auto", choices=("auto", *ENGINES),
                        help="what runs the model: auto (default) picks the fastest one installed for the file: keras for .keras, "
                        "openvino (else onnxruntime) for .onnx, openvino for .xml, litert for .tflite")
    parser.add_argument("--sigma", default=None, metavar="N|auto",
                        help="strength: for a .keras model with a noise-level map (the released model), denoise as for Gaussian noise of "
                        "this level in 8-bit units (higher: smoother); auto (default) lets the model estimate it per tile; "
                        "an explicit 'auto' also prints each image's estimate (wavelet estimator)")
    parser.add_argument("--tile", type=int, default=512, metavar="N", help="tile side in pixels (default 512); memory grows with N²")
    parser.add_argument("--overlap", type=int, default=64, metavar="N", help="overlap between tiles in pixels (default 64)")
    parser.add_argument("--batch", type=int, default=4, metavar="N", help="tiles per forward pass (default 4)")
    parser.add_argument("--self-ensemble", type=int, default=1, choices=ENSEMBLE_SIZES, metavar="N",
                        help="average the outputs for N flips/rotations of each image: 1, 2, 4 or 8 (default 1); "
                        "N times the time, a little less noise")
    parser.add_argument("--format", choices=sorted(FORMATS), help="write this format instead of each input's own")
    parser.add_argument("--overwrite", action="store_true", help="replace outputs that already exist (inputs are never replaced)")
    parser.add_argument("--verbose", action="store_true", help="also show the deep-learning framework's own start-up messages")
    args = parser.parse_args(argv)
    if args.sigma not in (None, "auto"):
        try:
            args.sigma = float(args.sigma)
        except ValueError:
            parser.error(f"--sigma: expected a number or 'auto', got {args.sigma!r}")
        if not 0 <= args.sigma <= 255:
            parser.error("--sigma: must be between 0 and 255")
    if args.tile < 32:
        parser.error("--tile: must be at least 32")
    if not 0 <= args.overlap < args.tile // 2:
        parser.error("--overlap: must be between 0 and half the tile")
    if args.batch < 1:
        parser.error("--batch: must be at least 1")
    return args


def plan_jobs(inputs: list[str], output: str, file_format: str | None) -> list[Job]:
    """Map inputs to output paths: one file to a file, anything else into a folder mirroring the inputs.
    Files inside the output folder are never inputs (an output folder may lie inside an input folder), and
    two inputs that would be written to one output name are an error naming both."""
    out = Path(output)
    sources = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = [p for p in images.find_images(path) if not _inside(p, out)]
            if not found:
                raise DenoiseError(f"{path}: no images in this folder ({', '.join(images.IMAGE_SUFFIXES)})")
            sources += [(p, p.relative_to(path)) for p in found]
        elif path.exists():
            sources.append((path, Path(path.name)))
        else:
            raise DenoiseError(f"{path}: no such file or folder")
    single = len(inputs) == 1 and Path(inputs[0]).is_file() and not out.is_dir()
    jobs = [Job(src, out if single else out / rel) for src, rel in sources]
    if file_format:
        jobs = [Job(j.source, j.target.with_suffix(FORMATS[file_format])) for j in jobs]
    claimed: dict[Path, Path] = {}
    for job in jobs:
        target = job.target.resolve()
        if target in claimed:
            raise DenoiseError(f"{claimed[target]} and {job.source} would both be written to {job.target}; "
                               "rename one, or leave out --format")
        claimed[target] = job.source
    return jobs


def _inside(path: Path, folder: Path) -> bool:
    return folder.resolve() in path.resolve().parents


@contextlib.contextmanager
def quiet_start(verbose: bool):
    """Import the deep-learning stack without its start-up chatter: TensorFlow's C++ runtime writes
    straight to the stderr file descriptor (absl's pre-init warning, oneDNN notices), which no logging
    setting reaches before the import, so the descriptor is pointed at /dev/null for the import alone."""
    if verbose:
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    for name in ("tensorflow", "absl", "keras"):  # not a retracing warning for each new image size
        logging.getLogger(name).setLevel(logging.ERROR)


class Released:
    """The released models as one denoiser: the gray model for gray images (where the file is present), the
    color model for the others. Each is loaded when first needed."""

    def __init__(self, *options):
        if not RELEASED_MODEL.is_file():
            raise DenoiseError(f"{RELEASED_MODEL}: the released model is missing from this checkout; pass --model (make repro trains models/model.keras)")
        self.options, self.loaded = options, {}

    def pick(self, pixels: np.ndarray):
        from .inference import Denoiser

        path = RELEASED_GRAY if pixels.shape[-1] == 1 and RELEASED_GRAY.is_file() else RELEASED_MODEL
        if path not in self.loaded:
            self.loaded[path] = Denoiser(path, *self.options)
        return self.loaded[path]

    def __call__(self, pixels: np.ndarray, progress=None) -> np.ndarray:
        return self.pick(pixels)(pixels, progress)

    def tiles_for(self, pixels: np.ndarray) -> int:
        return self.pick(pixels).tiles_for(pixels)

    @property
    def notes(self) -> set[str]:
        return set().union(*(denoiser.notes for denoiser in self.loaded.values()))

    @property
    def sigma_applied(self) -> bool:
        return all(denoiser.sigma_applied for denoiser in self.loaded.values())


def write_output(decoded: images.Decoded, pixels: np.ndarray, target: Path) -> None:
    suffix = target.suffix.lower()
    pillow_format = PILLOW_FORMATS.get(suffix)
    if pillow_format is None:
        raise DenoiseError(f"{target}: unsupported output suffix; use one of {', '.join(PILLOW_FORMATS)}")
    if decoded.alpha is not None and pillow_format in ("JPEG", "BMP"):
        raise DenoiseError(f"{target}: {pillow_format} cannot hold the alpha channel; use png or tiff")
    options = {"quality": 95} if pillow_format == "JPEG" else {}
    with atomic_path(target) as tmp:
        images.save_image(tmp, pixels, decoded.alpha, decoded.bit_depth, pillow_format, **options)


def export_main(argv) -> int:
    """`denoise export MODEL --format F -o PATH`."""
    from .config import EXPORT_FORMATS

    parser = argparse.ArgumentParser(prog="denoise export", description="Export a trained .keras model for other runtimes: "
                                     "float32, dynamic height and width, metadata (size multiple, channels) in PATH.json beside it.")
    parser.add_argument("model", metavar="MODEL", help="trained .keras model")
    parser.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    parser.add_argument("-o", "--output", required=True, metavar="PATH", help="model.onnx, model.xml (OpenVINO, with model.bin), model.tflite, or a folder (saved_model)")
    parser.add_argument("--verbose", action="store_true", help="also show the deep-learning framework's own start-up messages")
    args = parser.parse_args(argv)
    try:
        with quiet_start(args.verbose):
            from .export import export

            path = export(args.model, args.format, args.output)
    except DenoiseError as error:
        print(f"denoise export: {error}", file=sys.stderr)
        return 2
    print(f"exported {args.model} as {args.format}: {path} (metadata: {path}.json)")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["export"]:
        return export_main(argv[1:])
    args = parse_args(argv)
    try:
        jobs = plan_jobs(args.inputs, args.output, args.format)
        with quiet_start(args.verbose):
            from .inference import Denoiser

            options = (args.tile, args.overlap, args.batch, args.self_ensemble, args.engine, args.sigma if isinstance(args.sigma, float) else None)
            denoiser = Denoiser(args.model, *options) if args.model else Released(*options)
    except DenoiseError as error:
        print(f"denoise: {error}", file=sys.stderr)
        return 2
    inputs = {job.source.resolve() for job in jobs}
    done = skipped = failed = 0
    megapixels, started = 0.0, time.perf_counter()
    for job in tqdm(jobs, desc="files", unit="file", disable=len(jobs) < 2, file=sys.stderr):
        if job.target.resolve() in inputs:
            tqdm.write(f"skipped {job.source}: the output {job.target} is an input; never overwritten", file=sys.stderr)
            skipped += 1
            continue
        if job.target.exists() and not args.overwrite:
            tqdm.write(f"skipped {job.source}: {job.target} exists (use --overwrite to replace it)", file=sys.stderr)
            skipped += 1
            continue
        try:
            decoded = images.read_image(job.source)
            if args.sigma == "auto":
                from .evaluation import estimated_sigma

                tqdm.write(f"{job.source}: estimated noise sigma {estimated_sigma(decoded.pixels):.1f} (8-bit units); "
                           "informational: the model makes its own estimate", file=sys.stderr)
            tiles = denoiser.tiles_for(decoded.pixels)
            with tqdm(total=tiles, desc=job.source.name, unit="tile", leave=False, disable=tiles < 4, file=sys.stderr) as bar:
                clean = denoiser(decoded.pixels, progress=bar.update)
            write_output(decoded, clean, job.target)
        except DenoiseError as error:
            tqdm.write(f"failed {error}", file=sys.stderr)
            failed += 1
            continue
        except OSError as error:  # a full disk or a read-only folder fails this file; the others still get done
            tqdm.write(f"failed {job.source}: cannot write {job.target} ({error.strerror or error})", file=sys.stderr)
            failed += 1
            continue
        done += 1
        megapixels += decoded.pixels.shape[0] * decoded.pixels.shape[1] / 1e6
    if isinstance(args.sigma, float) and not denoiser.sigma_applied:
        print("note: this model takes no noise level (no noise-level map, or an exported file); --sigma was not used", file=sys.stderr)
    for note in sorted(denoiser.notes):
        print(f"note: {note}", file=sys.stderr)
    seconds = time.perf_counter() - started
    print(f"done {done}, skipped {skipped}, failed {failed}; {megapixels:.2f} megapixels in {seconds:.1f} s ({megapixels / max(seconds, 1e-9):.2f} MP/s)")
    return 0 if skipped == failed == 0 else 1


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
