"""Stage baseline: the classical denoiser (BM3D, or non-local means without the bm3d package) on
the test images. Its own stage so that retraining a model never recomputes it."""

from concurrent.futures import ProcessPoolExecutor

import numpy as np

from denoise.baseline import classical_denoise, resolve_method
from denoise.config import load_params
from denoise.datasets import load_split
from denoise.errors import exit_on_error
from denoise.storage import Stack, save_stack


def denoise_one(job):
    image, method, noise_type, level = job
    return image if method == "none" else classical_denoise(image, method, noise_type, level)


@exit_on_error
def main():
    params = load_params()
    method = resolve_method(params.baseline.method, params.noise.type)
    _, noisy = load_split("data/split", "test")
    jobs = [(image, method, params.noise.type, entry["level"]) for entry, image in zip(noisy.entries, noisy.images)]
    print(f"{method}: {len(jobs)} test images, {params.baseline.workers} worker(s)", flush=True)
    with ProcessPoolExecutor(params.baseline.workers) as pool:
        estimates = list(pool.map(denoise_one, jobs))
    save_stack("data/baseline", Stack([{**e, "method": method} for e in noisy.entries], estimates), np.float32)


if __name__ == "__main__":
    main()
