"""Short training runs for choosing settings: train on a bench work copy's split for a few epochs, then score
the model on PolyU-Canon's real noise (all crops and every 5th, with the model's own level and at --sigma 20)
and on the first 12 CBSD68 images at Gaussian σ 25. One JSON line per run, appended to --log.

    python bench/short_run.py --work bench/work-camera --name e6 \
        --set train.model.noise_scales=3 --set 'train.sampling.zoom={min: 1, max: 4}' --set 'train.sampling.zoom_types=[camera]'

The work copy's params.yaml (a finished `make bench`'s) is the starting point; --set overrides any key (YAML
values); the final phase is dropped and train.epochs set to --epochs (of its steps_per_epoch, 500 in the presets)."""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="a bench work copy with data/split (e.g. bench/work-camera)")
    parser.add_argument("--name", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    parser.add_argument("--out", default="/tmp/short-runs", help="where the models go")
    parser.add_argument("--log", default=str(ROOT / "bench" / "short-runs.jsonl"))
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    work = Path(args.work)
    raw = yaml.safe_load((work / "params.yaml").read_text())
    raw["train"]["epochs"] = args.epochs
    raw["train"]["final"] = {"epochs": 0, "loss": None, "patch_size": None, "batch_size": None}

    from denoise import metrics, training
    from denoise.config import parse_params
    from denoise.datasets import load_split
    from denoise.inference import Denoiser
    from real_bench import pairs, read, score_model
    from run_bench import apply_sets

    params = parse_params(apply_sets(raw, args.set))
    out = Path(args.out) / args.name
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    state = training.train(params.train, params.noise, load_split(work / "data/split", "train"), load_split(work / "data/split", "val"),
                           model_path=out / "model.keras", live_dir=out / "live", checkpoint_dir=out / "checkpoints")
    result = {"name": args.name, "set": args.set, "train_min": round((time.time() - started) / 60, 2), "val": round(state["best_val_psnr"], 3)}
    crops = pairs(Path(args.data) / "polyu-canon")
    for sigma in (None, 20):
        scores, _ = score_model(out / "model.keras", crops, sigma)
        result[f"polyu_{sigma or 'auto'}"] = round(float(np.mean([s[0] for s in scores])), 3)
        result[f"polyu11_{sigma or 'auto'}"] = round(float(np.mean([s[0] for s in scores[::5]])), 3)
    denoiser, scores = Denoiser(out / "model.keras"), []
    for k, path in enumerate(sorted((Path(args.data) / "cbsd68").iterdir())[:12]):
        clean = read(path)
        noisy = clean + np.random.default_rng(k).standard_normal(clean.shape).astype(np.float32) * 25 / 255
        scores.append(metrics.psnr(clean, denoiser(noisy)))
    result["cbsd68_first12_s25"] = round(float(np.mean(scores)), 3)
    print(json.dumps(result), flush=True)
    with open(args.log, "a") as log:
        log.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
