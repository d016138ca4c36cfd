"""Stage baseline: the classical denoiser (BM3D, or non-local means without the bm3d package) on
the test images. Its own stage so that retraining a model never recomputes it."""

import numpy as np

from denoise.baseline import classical_denoise, resolve_method
from denoise.config import load_params
from denoise.datasets import load_split
from denoise.errors import exit_on_error
from denoise.storage import Stack, save_stack


@exit_on_error
def main():
    params = load_params()
    method = resolve_method(params.baseline.method, params.noise.type)
    _, noisy = load_split("data/split", "test")
    out = Stack()
    for entry, image in zip(noisy.entries, noisy.images):
        print(f"{method}: {entry['name']} ({params.noise.level_key} {entry['level']:g})", flush=True)
        estimate = image if method == "none" else classical_denoise(image, method, params.noise.type, entry["level"])
        out.append({**entry, "method": method}, estimate)
    save_stack("data/baseline", out, np.float32)


if __name__ == "__main__":
    main()
