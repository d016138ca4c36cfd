"""`make score`: models side by side on clean test sets with seeded Gaussian noise, through the `denoise`
command's own Denoiser (tiles, channel handling: a color model on a gray set runs on replicated channels and
is averaged back; a gray model on a color set runs per channel). PSNR (dB, 8-bit protocol) per set and σ.

    python bench/score_models.py --model LABEL=PATH [--model ...] --set ../shared/datasets/bsd68 [--sigma 15 25 50]
    python bench/score_models.py ... --noise camera --sigma 0.0005 0.002 [--nr 1] [--jpeg 90]   (color sets)

The noise of image k at level σ is drawn from the seed (σ, k), the same for every model. With --noise camera
the levels are the camera noise's shot values (noise.py), with the camera's noise reduction --nr pixels wide
and JPEG at quality --jpeg.
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
    parser.add_argument("--sigma", nargs="+", type=float, default=[15, 25, 50], help="levels: σ (gaussian) or shot (camera)")
    parser.add_argument("--noise", choices=("gaussian", "camera"), default="gaussian")
    parser.add_argument("--nr", type=float, default=0.0, help="camera: the noise reduction's width (pixels)")
    parser.add_argument("--jpeg", type=float, default=100.0, help="camera: JPEG quality (100: none)")
    args = parser.parse_args()
    from denoise.config import CameraSteps, Levels
    from denoise.images import find_images, read_image
    from denoise.inference import Denoiser
    from denoise.metrics import psnr
    from denoise.noise import add_noise

    scale = 100 if args.noise == "gaussian" else 1e6  # seeds: (σ × 100, k) as before camera levels were added
    camera = CameraSteps(jpeg_quality=Levels(values=(args.jpeg,)), nr=Levels(values=(args.nr,)))
    name = "σ" if args.noise == "gaussian" else f"camera (nr {args.nr:g}, JPEG {args.jpeg:g}) shot "
    header = [f"{folder.name} {name}{sigma:g}" for folder in args.set for sigma in args.sigma]
    print("| model | " + " | ".join(header) + " |\n|---|" + "---|" * len(header), flush=True)
    sets = {folder: [read_image(path).pixels for path in find_images(folder)] for folder in args.set}
    for label, path in (m.split("=", 1) for m in args.model):
        denoiser, cells = Denoiser(path), []
        for folder, clean in sets.items():
            for sigma in args.sigma:
                scores = [psnr(c, denoiser(add_noise(c, args.noise, sigma, seed=(int(sigma * scale), k), camera=camera))) for k, c in enumerate(clean)]
                cells.append(f"{np.mean(scores):.2f}")
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
