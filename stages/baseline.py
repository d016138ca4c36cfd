"""Stage baseline: the classical denoiser (BM3D, or non-local means without the bm3d package) on the test
images, in baseline.workers processes. Its own stage so that retraining a model never recomputes it."""

import numpy as np

from denoise.baseline import denoise_job, resolve_method
from denoise.config import load_params
from denoise.datasets import load_split
from denoise.errors import exit_on_error
from denoise.parallel import ordered_map
from denoise.storage import save_stack


@exit_on_error
def main():
    params = load_params()
    method = resolve_method(params.baseline.method, params.noise.type)
    _, noisy = load_split("data/split", "test")
    print(f"{method}: {len(noisy)} test images, {params.baseline.workers} worker(s)", flush=True)
    jobs = ((image, method, params.noise.type, entry["level"]) for entry, image in noisy)
    outputs = ordered_map(denoise_job, jobs, params.baseline.workers)
    save_stack("data/baseline", (({**entry, "method": method}, out) for entry, out in zip(noisy.entries, outputs)), np.float32)


if __name__ == "__main__":
    main()
