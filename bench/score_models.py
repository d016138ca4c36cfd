"""`make score`: models side by side on clean test sets with seeded Gaussian noise, through the `denoise`
command's own Denoiser (tiles, channel handling: a color model on a gray set runs on replicated channels and
is averaged back; a gray model on a color set runs per channel). PSNR (dB, 8-bit protocol) per set and σ.

    python bench/score_models.py --model LABEL=PATH [--model ...] --set ../shared/datasets/bsd68 [--sigma 15 25 50]

The noise of image k at level σ is drawn from the seed (σ, k), the same for every model.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, metavar="LABEL=PATH")
    parser.add_argument("--set", action="append", required=True, type=Path, metavar="FOLDER", help="clean test images (repeatable)")
    parser.add_argument("--sigma", nargs="+", type=float, default=[15, 25, 50])
    args = parser.parse_args()
    from denoise.images import find_images, read_image
    from denoise.inference import Denoiser
    from denoise.metrics import psnr
    from denoise.noise import add_noise

    header = [f"{folder.name} σ{sigma:g}" for folder in args.set for sigma in args.sigma]
    print("| model | " + " | ".join(header) + " |\n|---|" + "---|" * len(header), flush=True)
    sets = {folder: [read_image(path).pixels for path in find_images(folder)] for folder in args.set}
    for label, path in (m.split("=", 1) for m in args.model):
        denoiser, cells = Denoiser(path), []
        for folder, clean in sets.items():
            for sigma in args.sigma:
                scores = [psnr(c, denoiser(add_noise(c, "gaussian", sigma, seed=(int(sigma * 100), k)))) for k, c in enumerate(clean)]
                cells.append(f"{np.mean(scores):.2f}")
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
