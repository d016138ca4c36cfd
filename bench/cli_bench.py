"""Benchmark the `denoise` command per engine: megapixels per second, peak memory and PSNR on this machine.

Usage: python bench/cli_bench.py [--model models/model.keras] [--exports models/export] [--quality ../shared/datasets/bsd68] [--network-only]
Inputs are made from scikit-image's bundled photos plus Gaussian noise (σ = 25), in a temp folder; each engine
runs the same model (the .keras file, or its exports: make repro writes them) with the same tiling. Peak RSS
comes from /usr/bin/time -v around each command; PSNR is each output's against the clean photo. With
--quality FOLDER, a second table: each row's mean PSNR (8-bit, as the pipeline scores) over that folder's images
with σ = 25 noise (seeded), through the same tiling in this process (the engines' agreement on real photos: BSD68).
With --network-only, instead: each engine's seconds for one batch of tiles alone (--batch tiles of --tile², the
model's channels), no file I/O, tiling or start-up: what an engine can gain at most.
"""

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data


def noisy(image: np.ndarray, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(np.clip(np.round(image + rng.normal(0, 25, image.shape)), 0, 255).astype(np.uint8))


def make_inputs(folder: Path) -> dict[str, list[str]]:
    gray = np.asarray(Image.fromarray(data.camera()).resize((481, 321)), dtype=np.float64)
    noisy(gray, 0).save(folder / "gray_481x321.png")
    np.save(folder / "out_gray.clean.npy", gray)
    photo = np.asarray(Image.fromarray(data.astronaut()).resize((4000, 3000), Image.Resampling.BICUBIC), dtype=np.float64)
    noisy(photo, 1).save(folder / "rgb_4000x3000.png")
    np.save(folder / "out_rgb.clean.npy", photo)
    small = folder / "small"
    small.mkdir()
    coffee = np.asarray(Image.fromarray(data.coffee()).resize((160, 120)), dtype=np.float64)
    for k in range(50):
        noisy(coffee, 10 + k).save(small / f"img{k:02d}.png")
    return {
        "481×321 gray": [str(folder / "gray_481x321.png"), "-o", str(folder / "out_gray.png")],
        "4000×3000 RGB": [str(folder / "rgb_4000x3000.png"), "-o", str(folder / "out_rgb.png")],
        "50 × 160×120 RGB (folder)": [str(small), "-o", str(folder / "out_small")],
    }


def psnr(output: Path) -> str:
    clean = output.with_suffix(".clean.npy")
    if not clean.is_file():
        return "–"
    error = np.mean((np.asarray(Image.open(output), np.float64) - np.load(clean)) ** 2)
    return f"{10 * np.log10(255**2 / error):.3f}"


def run(args: list[str], model: str, engine: str, tiling: list[str]) -> tuple[str, float]:
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "denoise.cli", *args, "--model", model, "--engine", engine, "--overwrite", *tiling]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if result.returncode != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(command)}\n{result.stderr[-2000:]}")
    summary = [line for line in result.stdout.splitlines() if line.startswith("done ")][-1]
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    return summary, rss_kb / 1024**2


# (row, engine, model file): the .keras model and the export stage's files
ROWS = (("keras", "keras", "{model}"), ("openvino", "openvino", "{exports}/model.xml"), ("onnxruntime", "onnxruntime", "{exports}/model.onnx"),
        ("litert", "litert", "{exports}/model.tflite"))


def quality(folder: Path, rows: list[tuple[str, str, str]]) -> None:
    from denoise.images import find_images, read_image
    from denoise.inference import Denoiser
    from denoise.metrics import psnr as protocol_psnr
    from denoise.noise import add_noise

    clean = [read_image(path).pixels for path in find_images(folder)]
    noisy = [add_noise(image, "gaussian", 25, seed=(0, k)) for k, image in enumerate(clean)]
    print(f"\n| engine | {folder.name}, σ = 25: mean PSNR (dB) | against keras |\n|---|---|---|")
    first = None
    for row, engine, model in rows:
        denoiser = Denoiser(model, engine=engine)
        score = np.mean([protocol_psnr(c, denoiser(n)) for n, c in zip(noisy, clean)])
        first = score if first is None else first
        print(f"| {row} | {score:.3f} | {score - first:+.3f} |", flush=True)


def network_only(rows: list[tuple[str, str, str]], tile: int, batch: int) -> None:
    from denoise.engines import open_engine
    from run_bench import median_seconds  # bench/ is this script's folder

    print(f"| engine | seconds per batch of {batch} × {tile}² tiles (median of 5) | megapixels/s | × keras |\n|---|---|---|---|")
    first = None
    for row, engine, model in rows:
        network = open_engine(model, engine)
        tiles = np.random.default_rng(0).random((batch, tile, tile, network.channels), dtype=np.float32)
        seconds = median_seconds(lambda: network(tiles), 5)  # noqa: B023 - after a warm-up call (compiling, tracing)
        first = first or seconds
        print(f"| {row} | {seconds:.3f} | {batch * tile * tile / 1e6 / seconds:.2f} | {first / seconds:.2f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/model.keras")
    parser.add_argument("--exports", default="models/export", help="the model's exports (the export stage's folder)")
    parser.add_argument("--tile", type=int, default=512, help="the tile side every row uses (denoise --tile)")
    parser.add_argument("--batch", type=int, default=4, help="tiles per forward pass (denoise --batch)")
    parser.add_argument("--quality", type=Path, help="a folder of clean images: also each row's PSNR on them at σ = 25")
    parser.add_argument("--network-only", action="store_true", help="only each engine's time for one batch of tiles")
    args = parser.parse_args()
    if args.network_only:
        rows = [(row, engine, model.format(model=args.model, exports=args.exports)) for row, engine, model in ROWS]
        network_only([r for r in rows if Path(r[2]).exists()], args.tile, args.batch)
        return
    tiling = ["--tile", str(args.tile), "--batch", str(args.batch)]
    print(f"`denoise` on {platform.processor() or platform.machine()}, {os.cpu_count()} cores; model {args.model} and its exports in {args.exports}; "
          f"tile {args.tile}, batch {args.batch}\n")
    print("| engine | input | megapixels/s (processing) | × keras | peak RSS (GB) | PSNR (dB) |")
    print("|---|---|---|---|---|---|")
    keras_rate, present = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        inputs = make_inputs(Path(tmp))
        for row, engine, model in ROWS:
            model = model.format(model=args.model, exports=args.exports)
            if not Path(model).exists():
                print(f"| {row} | (no {model}: run make repro) | – | – | – | – |", flush=True)
                continue
            present.append((row, engine, model))
            for label, cli_args in inputs.items():
                summary, rss = run(cli_args, model, engine, tiling)
                rate = float(re.search(r"\(([\d.]+) MP/s\)", summary).group(1))
                keras_rate.setdefault(label, rate)
                print(f"| {row} | {label} | {rate:.2f} | {rate / keras_rate[label]:.2f} | {rss:.2f} | {psnr(Path(cli_args[2]))} |", flush=True)

    if args.quality:
        quality(args.quality, present)


if __name__ == "__main__":
    main()
