"""What real camera noise looks like next to the synthetic kind: for PolyU-Canon (noisy crop minus its mean-of-shots
reference) and for camera noise made here on the first CBSD432 photos, the noise's σ (8-bit), its luma (channel
mean) and chroma (the rest) parts, its correlation with itself 1, 2 and 4 pixels away, what the models'
noise-level map (models.NoiseLevelMap, 3 scales) reads on the noisy image, what its 1× estimate reads on the
noise alone as a fraction of the noise's σ (1 for white noise; how much of the noise lies at the finest
scale), and how much stronger the noise is at
the clean image's edges than on its flat parts (σ over the quarter of pixels with the steepest luma gradient
over σ on the flattest quarter; on PolyU-Canon that also counts any misalignment of a shot with the mean).

    python bench/noise_stats.py [--data ../shared/datasets] [--shot 0.001 0.003] [--nr 0 2 4] [--quality 95]"""

import argparse
import itertools
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def stats(noisy: np.ndarray, clean: np.ndarray) -> list[float]:
    from denoise.models import NoiseLevelMap

    noise = noisy - clean
    noise = noise - noise.mean(axis=(0, 1))
    luma = noise.mean(axis=-1, keepdims=True)
    correlations = [float((noise[:, :-k] * noise[:, k:]).mean() / noise.var()) for k in (1, 2, 4)]
    side = min(noisy.shape[0], noisy.shape[1]) // 8 * 8
    maps = np.asarray(NoiseLevelMap(scales=3)(noisy[None, :side, :side]))[0, 0, 0] * 50
    # the 1× estimate of the noise alone (on a flat gray), as a fraction of its σ: 1 for white noise, less the
    # less of it lies at the finest scale (where the estimator looks)
    fine = float(np.asarray(NoiseLevelMap(scales=1)((noise + 0.5)[None, :side, :side]))[0, 0, 0, 0]) * 50 / (noise.std() * 255)
    from real_errors import flat_and_steep

    flat, steep = flat_and_steep(clean)
    edges = noise[steep].std() / noise[flat].std()
    return [noise.std() * 255, luma.std() * 255, (noise - luma).std() * 255, *correlations, *maps, fine, edges]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    parser.add_argument("--shot", nargs="+", type=float, default=[0.001, 0.003])
    parser.add_argument("--nr", nargs="+", type=float, default=[0.0, 2.0, 4.0])
    parser.add_argument("--quality", type=float, default=95)
    parser.add_argument("--photos", type=int, default=16)
    args = parser.parse_args()
    from denoise.config import CameraSteps, Levels
    from denoise.noise import add_noise, derive_seed
    from real_bench import pairs, read

    header = "| noise | σ | luma σ | chroma σ | corr. 1 px | 2 px | 4 px | map 1× | map 2× | map 4× | noise alone, 1× / σ | edges / flat |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    real = [stats(read(noisy), read(clean)) for _, noisy, clean in pairs(Path(args.data) / "polyu-canon")]
    print("| PolyU-Canon, real (mean of its crops) | " + " | ".join(f"{v:.2f}" for v in np.mean(real, axis=0)) + " |")
    photos = sorted((Path(args.data) / "cbsd432").iterdir())[: args.photos]
    clean = [read(p)[:320, :320] for p in photos]
    for shot, nr in itertools.product(args.shot, args.nr):
        steps = CameraSteps(jpeg_quality=Levels(values=(args.quality,)), nr=Levels(values=(nr,)))
        rows = [stats(add_noise(c, "camera", shot, derive_seed("stats", k), camera=steps), c) for k, c in enumerate(clean)]
        print(f"| camera, shot {shot:g}, nr {nr:g}, JPEG {args.quality:g} ({len(clean)} CBSD432 photos) | "
              + " | ".join(f"{v:.2f}" for v in np.mean(rows, axis=0)) + " |")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "bench"))
    main()
