"""Short self-supervised runs, for comparing training targets at equal steps without a whole `make bench`:
train on train400 with one fixed noisy copy per image (the preset's noise, seeded; the last 12 images
validate), then score BSD68 and Set12 at the preset's test σ, each on its own (one pass and ×8 self-ensemble). One JSON line
per run, printed and appended to --log.

    python bench/self_supervised_short.py --name n2n-3000 --steps 3000
    python bench/self_supervised_short.py --name reference-3000 --steps 3000 --section reference

The starting point is params.yaml under --preset (default bench/preset-n2n-long.yaml); --set overrides any
key (YAML values); --section reference trains the preset's supervised reference section instead. The test
images' noise is the bench's (same seed, same images), so the scores compare with `make bench`'s rows.
--every-epoch also scores every epoch's network (one pass) beside the validation figures, to see whether
the validation picks the right epoch."""

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
VALIDATION_IMAGES = 12


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--steps", type=int, default=3000, help="training steps (a multiple of --steps-per-epoch)")
    parser.add_argument("--steps-per-epoch", type=int, default=250, help="steps between validations (the best epoch is kept)")
    parser.add_argument("--preset", default=str(ROOT / "bench" / "preset-n2n-long.yaml"))
    parser.add_argument("--section", choices=("train", "reference"), default="train")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--ensembles", type=int, nargs="+", default=[1, 8], help="the final model's scores: one pass (1) and/or ×8 self-ensemble (8)")
    parser.add_argument("--every-epoch", action="store_true",
                        help="also score the network after every epoch (one pass), next to the validation PSNR that chooses the epoch (train_min then includes it)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    parser.add_argument("--out", default="/tmp/self-supervised-runs", help="where the models go")
    parser.add_argument("--log", default=str(ROOT / "bench" / "self-supervised-runs.jsonl"))
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from denoise import inference, metrics, training
    from denoise.config import parse_params
    from denoise.datasets import prepare, prepare_test_sets
    from denoise.noise import add_noise_to_stack
    from run_bench import apply_sets, load_preset, merge

    data = Path(args.data).resolve()
    raw = merge(yaml.safe_load((ROOT / "params.yaml").read_text()), load_preset(Path(args.preset)), data)
    for section in ("train", "reference"):
        raw[section].update(epochs=max(1, args.steps // args.steps_per_epoch), steps_per_epoch=args.steps_per_epoch)
    apply_sets(raw, args.set)
    params = parse_params(raw)
    config = getattr(params, args.section)
    clean, _ = prepare(str(data / "train400"), params.data)
    train = clean.subset(range(len(clean) - VALIDATION_IMAGES))
    val = clean.subset(range(len(clean) - VALIDATION_IMAGES, len(clean)))
    out = Path(args.out) / args.name
    test, noisy = prepare_test_sets([data / name for name in ("bsd68", "set12")], params.data, params.noise.with_levels(params.split.test_levels))  # as the split stage's
    truth = test.by_name()
    test_levels = sorted({entry["level"] for entry, _ in noisy})

    def scores(model, ensembles=(1, 8)) -> dict:
        result = {}
        for name in ("bsd68", "set12"):
            for level in test_levels:  # several levels (a blind preset's split.test_levels): one score per level, named by it
                suffix = f"_s{level:g}" if len(test_levels) > 1 else ""
                for ensemble in ensembles:
                    psnrs = [metrics.psnr(truth[entry["name"]], inference.predict(model, image, ensemble))
                             for entry, image in noisy if entry["set"] == name and entry["level"] == level]
                    result[f"{name}{suffix}_x{ensemble}"] = round(float(np.mean(psnrs)), 3)
        return result

    epochs = []
    extra = [every_epoch(scores, epochs)] if args.every_epoch else []
    started = time.time()
    state = training.train(config, params.noise, (train, add_noise_to_stack(train, params.noise)), (val, add_noise_to_stack(val, params.noise)),
                           model_path=out / "model.keras", live_dir=out / "live", checkpoint_dir=out / "checkpoints", extra_callbacks=extra)
    result = {"name": args.name, "section": args.section, "set": args.set, "steps": config.total_steps,
              "train_min": round((time.time() - started) / 60, 2), "best_epoch": state.get("best_epoch")}
    result.update(scores(inference.load_model(out / "model.keras"), args.ensembles))
    if epochs:
        result["epochs"] = epochs
    print(json.dumps(result), flush=True)
    with open(args.log, "a") as log:
        log.write(json.dumps(result) + "\n")


def every_epoch(scores, epochs: list):
    """--every-epoch's callback: after each epoch's validation, the network's one-pass test scores next to the
    validation PSNR that chooses the epoch, appended to `epochs`."""
    import keras

    from denoise import targets

    class EveryEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            network = targets.network_of(self.model)  # N2N: the wrapped network
            epochs.append({"epoch": epoch + 1, "val_psnr": round(float(logs["val_psnr"]), 3), **scores(network, ensembles=(1,))})
            print(json.dumps(epochs[-1]), flush=True)

    return EveryEpoch()


if __name__ == "__main__":
    main()
