"""`make bench-real`: denoisers on real camera noise, PolyU-Canon (real noisy JPEG crops against the mean of
many shots of the same scene), whose references no model trains on. One markdown table, printed and written to bench/results-real.md.

Rows: the noisy crops; CBM3D at the σ that skimage's wavelet estimator gives each crop; CBM3D at the single σ
that scores best on the crops it runs on (a tuned classical baseline, tuned on the test crops themselves:
11/15/20 first, widened while the best is at an edge); then each model given with --model LABEL=PATH
(by default the color presets' models that `make bench PRESET=bench/preset-color.yaml` and
`PRESET=bench/preset-camera.yaml` trained, and the released model), through the `denoise` command's own
Denoiser (tiles, --sigma auto). CBM3D costs 20–40 s a 512² crop here, so it runs on every 5th crop
(--cbm3d-every; 11 of PolyU-Canon's 55) and the table has two columns: all crops (noisy and models) and the
CBM3D subset (every row). CBM3D results are kept in bench/cache/real-cbm3d-SET.json (by crop and σ), so a
rerun only computes what it has not seen. With --append, this run's model rows go below those already in --out
(whose noisy and CBM3D rows must be this run's), with the command that made them in its last paragraph.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from denoise import images, metrics  # noqa: E402
from denoise.config import ENSEMBLE_SIZES  # noqa: E402
from denoise.evaluation import estimated_sigma  # noqa: E402
from denoise.parallel import ordered_map  # noqa: E402
from denoise.storage import atomic_path  # noqa: E402

FIXED_ROWS = 5  # the table's header, its separator, the noisy crops, CBM3D at the estimated σ, CBM3D at the tuned σ

DEFAULT_MODELS = [("Gaussian-only color blind model (bench/preset-color.yaml)", "bench/work-color/models/model.keras"),
                  ("Gaussian + camera noise color blind model (bench/preset-camera.yaml)", "bench/work-camera/models/model.keras"),
                  ("released model (models/released/photo.keras)", "models/released/photo.keras")]


def pairs(folder: Path) -> list[tuple[str, Path, Path]]:
    found = []
    for noisy in sorted(folder.glob("*_real.*")):
        clean = noisy.with_name(noisy.name.replace("_real.", "_mean."))
        if not clean.is_file():
            raise SystemExit(f"error: {noisy} has no reference {clean.name}")
        found.append((noisy.name.removesuffix(noisy.suffix).removesuffix("_real"), noisy, clean))
    if not found:
        raise SystemExit(f"error: no *_real.* crops in {folder}")
    return found


def read(path: Path) -> np.ndarray:
    return images.to_channels(images.read_image(path).pixels, 3)


def _cbm3d_job(job):
    noisy_path, clean_path, sigma = job
    import bm3d

    noisy, clean = read(noisy_path), read(clean_path)
    out = bm3d.bm3d_rgb(noisy, sigma / 255.0)
    return metrics.psnr(clean, out), metrics.ssim(clean, out)


class CBM3DCache:
    """PSNR/SSIM of CBM3D per (crop, σ rounded to 0.01), computed in worker processes and kept in a JSON file."""

    def __init__(self, path: Path, crops, workers: int):
        self.path, self.crops, self.workers = path, crops, workers
        self.scores = json.loads(path.read_text()) if path.is_file() else {}

    def run(self, sigmas: dict[str, float]) -> list[tuple[float, float]]:
        """Scores for each crop at its σ (sigmas: crop name -> σ in 8-bit units), computing what is missing."""
        keys = {name: f"{name}|{sigmas[name]:.2f}" for name, _, _ in self.crops}
        todo = [(n, c, round(sigmas[name], 2)) for name, n, c in self.crops if keys[name] not in self.scores]
        todo_keys = [keys[name] for name, _, _ in self.crops if keys[name] not in self.scores]
        for done, (key, score) in enumerate(zip(todo_keys, ordered_map(_cbm3d_job, todo, self.workers)), 1):
            self.scores[key] = score
            if done % 10 == 0 or done == len(todo):
                self.save()
                print(f"  CBM3D: {done}/{len(todo)}", flush=True)
        return [tuple(self.scores[keys[name]]) for name, _, _ in self.crops]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.scores, indent=0, sort_keys=True))
        os.replace(tmp, self.path)


def tuned_sigma(cache: CBM3DCache, names: list[str]) -> tuple[float, dict[float, float]]:
    """The single σ with the best mean PSNR over the crops cache holds: 11, 15, 20 first, widened while the best
    is at an edge."""
    ladder = [3, 5, 8, 11, 15, 20, 26, 34, 45]
    means: dict[float, float] = {}
    low, high = ladder.index(11), ladder.index(20)
    while True:
        for sigma in ladder[low : high + 1]:
            if sigma not in means:
                means[sigma] = float(np.mean([p for p, _ in cache.run(dict.fromkeys(names, float(sigma)))]))
                print(f"  CBM3D σ {sigma}: {means[sigma]:.3f} dB over {len(names)} crops", flush=True)
        best = max(means, key=means.get)
        if best == ladder[low] and low > 0:
            low -= 1
        elif best == ladder[high] and high < len(ladder) - 1:
            high += 1
        else:
            return best, means


def score_model(path: Path, crops, sigma: float | None = None, ensemble: int = 1) -> tuple[list[tuple[float, float]], float]:
    from denoise.inference import Denoiser

    denoiser = Denoiser(path, sigma=sigma, ensemble=ensemble)
    scores, started = [], time.perf_counter()
    for _, noisy_path, clean_path in crops:
        noisy, clean = read(noisy_path), read(clean_path)
        out = denoiser(noisy)
        scores.append((metrics.psnr(clean, out), metrics.ssim(clean, out)))
    return scores, (time.perf_counter() - started) / len(crops)


def row(label: str, everything, subset, every: int, seconds=None) -> str:
    """everything: (psnr, ssim) per crop, or None (not run on all crops); subset: those of the CBM3D crops."""
    def cell(scores):
        return "–" if scores is None else f"{np.mean([s[0] for s in scores]):.2f} / {np.mean([s[1] for s in scores]):.4f}"

    subset = subset if subset is not None else everything[::every]
    return f"| {label} | {cell(everything)} | {cell(subset)} | {'–' if seconds is None else f'{seconds:.2f}'} |"


def append_rows(old: str, new: str, note: str, where: str) -> str:
    """`old` (a table this script wrote, perhaps appended to) with `new`'s model rows below its last row and `note`
    ending its last paragraph. Both must share the header, noisy and CBM3D rows; else a one-line error naming `where`."""
    old_lines, new_table = old.rstrip("\n").splitlines(), [line for line in new.splitlines() if line.startswith("|")]
    table = [k for k, line in enumerate(old_lines) if line.startswith("|")]
    if [old_lines[k] for k in table[:FIXED_ROWS]] != new_table[:FIXED_ROWS]:
        raise SystemExit(f"error: {where}: its header, noisy or CBM3D rows are not this run's (another set, --cbm3d-every or "
                         "CBM3D cache?); --append adds rows only to a table of the same crops, so write another --out")
    lines = old_lines[: table[-1] + 1] + new_table[FIXED_ROWS:] + old_lines[table[-1] + 1:]
    return "\n".join(lines[:-1] + [f"{lines[-1]} {note}"]) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"), help="folder holding polyu-canon")
    parser.add_argument("--set", default="polyu-canon", help="a folder of *_real / *_mean pairs inside --data")
    parser.add_argument("--model", action="append", metavar="LABEL=PATH", help="a model row (repeatable); default: the color presets' models and the released one, where present")
    parser.add_argument("--workers", type=int, default=2, help="CBM3D processes")
    parser.add_argument("--strength", nargs="*", type=float, default=[], metavar="SIGMA",
                        help="also the last model at these fixed noise levels (denoise --sigma N), for a model with a noise map")
    parser.add_argument("--self-ensemble", type=int, default=1, choices=ENSEMBLE_SIZES, metavar="N",
                        help="also score each --strength row with the mean of N flipped/rotated passes (denoise --self-ensemble N)")
    parser.add_argument("--cbm3d-every", type=int, default=5, metavar="N", help="run CBM3D on every Nth crop (1: all)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results-real.md"))
    parser.add_argument("--append", action="store_true", help="add this run's model rows to the table in --out instead of replacing it")
    args = parser.parse_args()
    crops = pairs(Path(args.data) / args.set)
    models = [tuple(m.split("=", 1)) for m in args.model] if args.model else [(label, path) for label, path in DEFAULT_MODELS if (ROOT / path).is_file()]
    if args.append and not models:
        raise SystemExit("error: --append: no model to add a row for; give --model LABEL=PATH")
    every = args.cbm3d_every
    cache = CBM3DCache(ROOT / "bench" / "cache" / f"real-cbm3d-{args.set}.json", crops[::every], args.workers)
    names = [name for name, _, _ in cache.crops]

    noisy_scores = [(metrics.psnr(read(c), read(n)), metrics.ssim(read(c), read(n))) for _, n, c in crops]
    estimates = {name: estimated_sigma(read(n)) for name, n, _ in cache.crops}
    print(f"{len(crops)} crops, CBM3D on {len(cache.crops)}: at each crop's estimated σ (mean {np.mean(list(estimates.values())):.2f})", flush=True)
    started = time.perf_counter()
    estimated_scores = cache.run(estimates)
    best, means = tuned_sigma(cache, names)
    tuned_scores = cache.run(dict.fromkeys(names, float(best)))
    cbm3d_minutes = (time.perf_counter() - started) / 60

    lines = [f"| method | all {len(crops)} crops: PSNR (dB) / SSIM | the {len(cache.crops)} CBM3D crops: PSNR / SSIM | s per crop |", "|---|---|---|---|",
             row("noisy input", noisy_scores, None, every),
             row(f"CBM3D, σ from the wavelet estimator per crop (mean σ {np.mean(list(estimates.values())):.1f})", None, estimated_scores, every),
             row(f"CBM3D, σ = {best} (the best single σ on these crops)", None, tuned_scores, every)]
    for label, path in models:
        print(f"scoring {label}: {path}", flush=True)
        scores, seconds = score_model(ROOT / path, crops)
        lines.append(row(label, scores, None, every, seconds))
    for sigma in args.strength:
        for ensemble in sorted({1, args.self_ensemble}):
            scores, seconds = score_model(ROOT / models[-1][1], crops, sigma, ensemble)
            views = f" --self-ensemble {ensemble}" if ensemble > 1 else ""
            lines.append(row(f"the last model with `--sigma {sigma:g}{views}`", scores, None, every, seconds))
    sweep = ", ".join(f"σ {s}: {means[s]:.2f}" for s in sorted(means))
    text = (f"Real camera noise: {args.set}, {len(crops)} crops of 512×512 (noisy JPEG against the mean of many shots), "
            f"PSNR / SSIM on the 8-bit scale, no model trained on its references; CBM3D on every {every}th crop. Measured by `make bench-real` "
            f"on {os.cpu_count()} CPU cores ({platform.machine()}); "
            + (f"CBM3D took {cbm3d_minutes:.1f} min this run (cached crops excluded).\n\n" if cbm3d_minutes >= 0.05 else
               "CBM3D's results all came from its cache (bench/cache) this run.\n\n")
            + "\n".join(lines) + f"\n\nCBM3D's σ search, mean PSNR over its {len(cache.crops)} crops: {sweep}. Models run as `denoise` runs them "
            "(512-pixel tiles, the model's own noise-level estimate); seconds per crop on this machine.\n")
    if args.append and Path(args.out).is_file():
        note = (f"The last {len(lines) - FIXED_ROWS} rows: `python bench/real_bench.py {shlex.join(sys.argv[1:])}` "
                f"({datetime.date.today().isoformat()}, {os.cpu_count()} CPU cores, {platform.machine()}).")
        text = append_rows(Path(args.out).read_text(), text, note, args.out)
    with atomic_path(args.out) as tmp:
        tmp.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
