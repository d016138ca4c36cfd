"""Make the README's before/after picture with the real `denoise` command.

Usage: python docs/make_figure.py   (after `make repro`). A 256×256 crop of `camera` (a test image,
not seen in training) gets Gaussian noise σ = 25 (seed 0); `denoise` cleans it; the strip
clean | noisy | denoised, each with its PSNR, is written to docs/before_after.png.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from skimage import data

from denoise import images, metrics
from denoise.evaluation import comparison_panel

HERE = Path(__file__).parent


def main():
    clean = data.camera()[40:296, 150:406, None].astype(np.float32) / 255.0
    noisy = clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        noisy_path, out_path = Path(tmp) / "noisy.png", Path(tmp) / "denoised.png"
        images.encode(noisy).save(noisy_path)
        subprocess.run([sys.executable, "-m", "denoise.cli", str(noisy_path), "-o", str(out_path)], check=True)
        noisy_8bit = images.read_image(noisy_path).pixels
        denoised = images.read_image(out_path).pixels
    panels = [("clean", clean), (f"noisy {metrics.psnr(clean, noisy_8bit):.2f} dB", noisy_8bit),
              (f"denoise {metrics.psnr(clean, denoised):.2f} dB", denoised)]
    comparison_panel(panels).save(HERE / "before_after.png")
    print(f"wrote {HERE / 'before_after.png'}")


if __name__ == "__main__":
    main()
