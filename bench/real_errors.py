"""Where the error left on PolyU-Canon lies: for the noisy crops, CBM3D at one σ and each --model, the RMS error
(8-bit) against the mean-of-shots reference split by spatial frequency (the crop's mean offset per channel;
coarser than 8 px; 2–8 px; 1–2 px; finer than 1 px: differences of Gaussian low-passes), split by the
reference's edges (finer than 1 px and 1–8 px, on the flattest and the steepest quarter of pixels by luma gradient),
and the PSNR after a Gaussian blur of 0.5 px (a positive gain: the reference is smoother than the output).
On the crops `make bench-real` runs CBM3D on (every 5th); CBM3D's outputs are kept in bench/cache.

    python bench/real_errors.py --model "released=models/released/photo.keras" --sigma 12 [--cbm3d-sigma 15]"""

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from denoise import metrics  # noqa: E402
from denoise.parallel import ordered_map  # noqa: E402
from real_bench import pairs, read  # noqa: E402

BANDS = ("offset", "> 8 px", "2–8 px", "1–2 px", "< 1 px")


def bands(error: np.ndarray) -> list[np.ndarray]:
    """error as the sum of its per-channel mean and four frequency bands."""
    offset = error.mean(axis=(0, 1), keepdims=True)
    rest = error - offset
    low = [gaussian_filter(rest, (s, s, 0)) for s in (8, 2, 1)]
    return [np.broadcast_to(offset, error.shape), low[0], low[1] - low[0], low[2] - low[1], rest - low[2]]


def flat_and_steep(clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the flattest and the steepest quarter of a clean image's pixels by luma gradient (1 px Gaussian
    derivative, averaged over 2 px)."""
    gradient = gaussian_filter(np.hypot(*np.gradient(gaussian_filter(clean.mean(axis=-1), 1.0))), 2.0)
    return gradient <= np.quantile(gradient, 0.25), gradient >= np.quantile(gradient, 0.75)


def figures(estimate: np.ndarray, clean: np.ndarray) -> list[float]:
    error = estimate - clean
    parts = bands(error)
    flat, steep = flat_and_steep(clean)
    fine, middle = parts[4], parts[2] + parts[3]
    by_edges = [np.mean(band[mask] ** 2) for mask in (flat, steep) for band in (fine, middle)]
    blurred = metrics.psnr(clean, gaussian_filter(estimate, (0.5, 0.5, 0))) - metrics.psnr(clean, estimate)
    return [metrics.psnr(clean, estimate), *[np.mean(p**2) for p in parts], *by_edges, blurred]


def _cbm3d(job):
    import bm3d

    noisy_path, sigma, cached = job
    if not cached.is_file():
        out = bm3d.bm3d_rgb(read(noisy_path), sigma / 255.0).astype(np.float32)
        tmp = cached.with_suffix(".tmp.npy")
        np.save(tmp, out)
        tmp.replace(cached)
    return np.load(cached)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    parser.add_argument("--model", action="append", default=[], metavar="LABEL=PATH")
    parser.add_argument("--sigma", type=float, default=None, help="the models' noise level (denoise --sigma); default: their own estimate")
    parser.add_argument("--cbm3d-sigma", type=float, default=15.0)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    crops = pairs(Path(args.data) / "polyu-canon")[:: args.every]
    cache = ROOT / "bench" / "cache" / "real-cbm3d-outputs"
    cache.mkdir(parents=True, exist_ok=True)
    clean = [read(c) for _, _, c in crops]
    rows = {"noisy input": [read(n) for _, n, _ in crops]}
    rows[f"CBM3D σ {args.cbm3d_sigma:g}"] = list(ordered_map(
        _cbm3d, [(n, args.cbm3d_sigma, cache / f"{name}-{args.cbm3d_sigma:g}.npy") for name, n, _ in crops], args.workers))
    from denoise.inference import Denoiser

    for label, path in (m.split("=", 1) for m in args.model):
        denoiser = Denoiser(ROOT / path, sigma=args.sigma)
        rows[label + (f", --sigma {args.sigma:g}" if args.sigma is not None else "")] = [denoiser(read(n)) for _, n, _ in crops]
    print(f"PolyU-Canon, {len(crops)} crops (every {args.every}th): RMS error (8-bit) by band; by the reference's edges "
          "(flattest / steepest quarter of pixels: < 1 px, 1–8 px); PSNR change after a 0.5 px Gaussian blur\n")
    print("| output | PSNR | " + " | ".join(BANDS) + " | flat < 1 | flat 1–8 | steep < 1 | steep 1–8 | blur 0.5 px |")
    print("|---" * 12 + "|")
    for label, outputs in rows.items():
        values = np.mean([figures(o, c) for o, c in zip(outputs, clean)], axis=0)
        cells = [f"{values[0]:.2f}", *[f"{np.sqrt(v) * 255:.2f}" for v in values[1:10]], f"{values[10]:+.2f}"]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
