"""`make bench-scale`: the pipeline on a data set larger than memory: seconds and peak memory per stage.

Builds a folder of large gray photos (each a 2×2 mosaic of natural photos from the datasets folder, default
../shared/datasets/cbsd432, or from scikit-image's bundled ones, upscaled to 1024² a quarter: 2048² in all)
holding at least --gb GB of decoded float32 pixels, then runs the stage scripts prepare → noise → split →
train (a short one) in a copy of the project, each under /usr/bin/time for its peak resident memory, and the
same short train on a small data set (the first few of the same photos) for the training speed to compare.
prepare also runs on one core (taskset) to show how it scales with cores. Prints a markdown table.

    python bench/scale.py [--gb 10] [--work bench/work-scale]
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from denoise.config import deep_merge  # noqa: E402
from denoise.parallel import ordered_map, workers  # noqa: E402

SIDE = 2048
PARAMS = {
    "data": {"channels": 1, "max_side": None},
    "noise": {"type": "gaussian", "sigma": 25, "seed": 0},
    "split": {"test_fraction": 0.01, "val_fraction": 0.0005, "test_source": None, "seed": 0},  # one validation image in both sets
    "baseline": {"method": "none"},
    "train": {"epochs": 3, "steps_per_epoch": 100, "final": {"epochs": 0}},
}


def photo_files(data: Path) -> list[Path]:
    folder = data / "cbsd432"
    if folder.is_dir():
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".tif"))
    import skimage.data

    bundled = Path(skimage.data.__file__).parent
    return [bundled / name for name in ("astronaut.png", "camera.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png")]


def mosaic(job) -> str:
    """One 2048² gray photo: four source photos, each cropped square and resized to 1024²."""
    index, files, folder = job
    rng = np.random.default_rng(index)
    canvas = Image.new("L", (SIDE, SIDE))
    for quarter in range(4):
        with Image.open(files[rng.integers(len(files))]) as photo:
            gray = photo.convert("L")
            side = min(gray.size)
            left, top = rng.integers(0, gray.width - side + 1), rng.integers(0, gray.height - side + 1)
            tile = gray.crop((left, top, left + side, top + side)).resize((SIDE // 2, SIDE // 2), Image.Resampling.LANCZOS)
        canvas.paste(tile, ((quarter % 2) * SIDE // 2, (quarter // 2) * SIDE // 2))
    path = folder / f"{index:05d}.png"
    canvas.save(path, compress_level=1)
    return path.name


def make_source(folder: Path, count: int, data: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    missing = [k for k in range(count) if not (folder / f"{k:05d}.png").exists()]
    files = photo_files(data)
    for _ in ordered_map(mosaic, ((k, files, folder) for k in missing)):
        pass


def copy_project(work: Path, source: Path, steps_per_epoch: int) -> None:
    for name in ("src", "stages"):
        shutil.rmtree(work / name, ignore_errors=True)
        shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    changes = deep_merge(PARAMS, {"data": {"source": str(source)}, "train": {"steps_per_epoch": steps_per_epoch}})
    params = deep_merge(yaml.safe_load((ROOT / "params.yaml").read_text()), changes)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run_stage(work: Path, script: str, *args: str, cores: str | None = None) -> dict:
    """Seconds and peak RSS (GB) of one stage script, and its output."""
    command = ["/usr/bin/time", "-v", sys.executable, f"stages/{script}.py", *args]
    if cores:
        command = ["taskset", "-c", cores, *command]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=work, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": "src", "TF_CPP_MIN_LOG_LEVEL": "3"})
    seconds = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"{script} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1)) / 1024**2
    return {"seconds": seconds, "rss": rss, "output": result.stdout}


def steps_per_second(output: str) -> float:
    """From Keras's per-epoch lines ("100/100 - 9s - 88ms/step - …"), the epochs after the first (which compiles).
    Keras's figure includes the epoch's validation (one 2048² image in both data sets)."""
    ms = [float(m) for m in re.findall(r"(\d+)ms/step", output)]
    return 1000 / np.mean(ms[1:] if len(ms) > 1 else ms)


def folder_gb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=10.0, help="decoded float32 pixels of the large data set, in GB")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    parser.add_argument("--work", default=str(ROOT / "bench" / "work-scale"))
    parser.add_argument("--small", type=int, default=24, help="photos in the small data set")
    parser.add_argument("--steps-per-epoch", type=int, default=200, help="the short train: 3 epochs of this many steps")
    args = parser.parse_args()
    work = Path(args.work).resolve()
    count = int(np.ceil(args.gb * 1e9 / (SIDE * SIDE * 4)))
    started = time.perf_counter()
    make_source(work / "photos", count, Path(args.data))
    print(f"source: {count} photos of {SIDE}² in {work / 'photos'} ({time.perf_counter() - started:.0f} s)", flush=True)
    small = work / "small"
    small_photos = small / "photos"
    small_photos.mkdir(parents=True, exist_ok=True)
    for k in range(min(args.small, count)):
        shutil.copy2(work / "photos" / f"{k:05d}.png", small_photos / f"{k:05d}.png")
    rows = {}
    for label, folder, source in (("small", small, small_photos), ("large", work / "large", work / "photos")):
        folder.mkdir(parents=True, exist_ok=True)
        copy_project(folder, source, args.steps_per_epoch)
        for stage in ("prepare", "noise", "split"):
            rows[label, stage] = run_stage(folder, stage)
            print(f"{label} {stage}: {rows[label, stage]['seconds']:.0f} s, {rows[label, stage]['rss']:.2f} GB", flush=True)
        if label == "large":
            rows[label, "prepare, 1 core"] = run_stage(folder, "prepare", cores="0")
        rows[label, "train"] = run_stage(folder, "train", "train")
        print(f"{label} train: {steps_per_second(rows[label, 'train']['output']):.1f} steps/s", flush=True)
    large = work / "large"
    pixels = sum(m["height"] * m["width"] for m in json.loads((large / "data" / "manifest.json").read_text())["images"])
    print(f"\nLarge data set: {count} gray photos of {SIDE}², {pixels * 4 / 1e9:.1f} GB of decoded float32 pixels; on disk "
          f"prepared {folder_gb(large / 'data' / 'prepared'):.1f} GB (16-bit), noisy {folder_gb(large / 'data' / 'noisy'):.1f} GB, "
          f"split {folder_gb(large / 'data' / 'split'):.1f} GB. {workers()} CPU cores, {os.cpu_count()} in the machine.\n")
    print(f"| stage | large: seconds | large: peak RSS (GB) | small ({min(args.small, count)} photos): seconds | small: peak RSS (GB) |\n|---|---|---|---|---|")
    for stage in ("prepare", "prepare, 1 core", "noise", "split", "train"):
        big, little = rows.get(("large", stage)), rows.get(("small", stage))
        print(f"| {stage} | {big['seconds']:.0f} | {big['rss']:.2f} | " + (f"{little['seconds']:.0f} | {little['rss']:.2f} |" if little else "– | – |"))
    large_rate, small_rate = steps_per_second(rows["large", "train"]["output"]), steps_per_second(rows["small", "train"]["output"])
    print(f"\nTraining: {large_rate:.1f} steps/s on the large data set, {small_rate:.1f} on the small one "
          f"({100 * (large_rate / small_rate - 1):+.0f} %); prepare on {workers()} cores: "
          f"{rows['large', 'prepare, 1 core']['seconds'] / rows['large', 'prepare']['seconds']:.2f}× faster than on one.")


if __name__ == "__main__":
    main()
