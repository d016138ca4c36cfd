"""Seconds per training step of params.yaml's model, under each Keras backend and precision, on this machine.

    python bench/step_time.py [--steps 200]

Each backend runs in its own process (Keras picks its backend once, at import): the train section's network,
loss and optimizer, fed by the pipeline's own sampler (sampling.py) from synthetic 256² images, timed over
--steps steps after a warm-up of 20. Prints a markdown table.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(backend: str, precision: str, steps: int) -> float:
    sys.path.insert(0, str(ROOT / "src"))
    import dataclasses

    import keras
    import numpy as np

    from denoise import models
    from denoise.config import load_params
    from denoise.losses import get_loss
    from denoise.optimization import adam
    from denoise.sampling import PatchSampler, batches
    from denoise.storage import Stack

    assert keras.backend.backend() == backend
    params = load_params(ROOT / "params.yaml")
    config = dataclasses.replace(params.train, epochs=1, steps_per_epoch=steps + 20, final=dataclasses.replace(params.train.final, epochs=0))
    keras.mixed_precision.set_global_policy(precision)
    rng = np.random.default_rng(0)
    clean = Stack([{"name": f"{k}"} for k in range(8)], [rng.random((256, 256, 1), np.float32) for _ in range(8)])
    sampler = PatchSampler(clean, clean, config, params.noise)
    model = models.build_model(config.model, channels=1)
    model.compile(optimizer=adam(config), loss=get_loss(config.loss))
    model.fit(batches(sampler, 0, 20), epochs=1, steps_per_epoch=20, verbose=0)
    started = time.perf_counter()
    model.fit(batches(sampler, 20, steps), epochs=1, steps_per_epoch=steps, verbose=0)
    return (time.perf_counter() - started) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--one", nargs=2, metavar=("BACKEND", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one, args.steps)))
        return
    rows = []
    for backend in ("tensorflow", "jax"):
        cells = []
        for precision in ("float32", "mixed_bfloat16"):
            env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
            result = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--one", backend, precision],
                                    env=env, capture_output=True, text=True)
            cells.append(f"{json.loads(result.stdout.splitlines()[-1]):.3f} s" if result.returncode == 0 else "failed")
        rows.append(f"| {backend} | " + " | ".join(cells) + " |")
    print(f"Seconds per training step, params.yaml's train section, {os.cpu_count()} CPU cores:\n")
    print("| backend | float32 | mixed_bfloat16 |\n|---|---|---|\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
