"""`make levers`: training levers compared at (about) equal training time, one markdown table.

Each variant of bench/levers.yaml is the bench preset's `train` section with a few keys changed,
trained by the pipeline's own training code on the split that `make bench` prepared in bench/work,
then scored on Set12 and every 4th BSD68 image (a quick proxy for the full table) at σ 15/25/50.
Written to bench/levers.md and printed.
"""

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from denoise import evaluation, inference  # noqa: E402
from denoise.config import deep_merge, parse_params  # noqa: E402
from denoise.datasets import load_split  # noqa: E402
from denoise.training import train  # noqa: E402
from run_bench import SETS, SIGMAS, median_seconds  # noqa: E402  (bench/ is this script's folder)


def quick_test(test):
    """Set12 and every 4th BSD68 image."""
    def keep(entry):
        return entry["set"] == "set12" or int(Path(entry["name"]).stem[-3:]) % 4 == 0
    return tuple(stack.select(keep) for stack in test)


def run_variant(raw_params: dict, overrides: dict, splits: dict) -> dict:
    raw = copy.deepcopy(raw_params)
    raw["train"] = deep_merge(raw["train"], overrides)
    params = parse_params(raw)  # the overrides are parsed and checked as params.yaml's own keys are
    config = params.train
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        state = train(config, params.noise, splits["train"], splits["val"],
                      model_path=scratch / "model.keras", live_dir=scratch / "live", checkpoint_dir=scratch / "checkpoints")
        model = inference.load_model(scratch / "model.keras")
    clean, noisy = splits["test"]
    outputs = [inference.predict(model, image) for image in noisy.images]
    summary = evaluation.summarize(evaluation.score(clean, noisy, {"model": outputs}), params.noise.level_key)
    image = noisy.select(lambda e: e["set"] == "bsd68").images[0]
    return {"steps": config.total_steps, "minutes": state["train_seconds"] / 60,
            "seconds": median_seconds(lambda: inference.predict(model, image), 5),
            **{f"{s} {sigma}": summary[f"{s}.{params.noise.level_key}_{sigma}"]["model"]["psnr"] for s in SETS for sigma in SIGMAS}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(ROOT / "bench" / "work"), help="a bench folder where `make bench` has prepared the split")
    parser.add_argument("--variants", default=str(ROOT / "bench" / "levers.yaml"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "levers.md"))
    parser.add_argument("--only", nargs="*", help="run only these variants")
    args = parser.parse_args()
    work = Path(args.work).resolve()
    if not (work / "data" / "split" / "test").is_dir():
        raise SystemExit(f"error: {work}/data/split not found; run `make bench` first (it prepares the split)")
    variants = yaml.safe_load(Path(args.variants).read_text())["variants"]
    raw_params = yaml.safe_load((work / "params.yaml").read_text())
    splits = {part: load_split(work / "data" / "split", part) for part in ("train", "val", "test")}
    splits["test"] = quick_test(splits["test"])
    earlier = {}  # rows of variants not run this time are kept from the last table, in the yaml's order
    if args.only and Path(args.out).exists():
        earlier = {line.split("|")[1].strip(): line for line in Path(args.out).read_text().splitlines()[4:] if line.startswith("| ")}
    header = "| variant | steps | training (min) | s per 481×321 image | " + " | ".join(f"{'BSD68¼' if s == 'bsd68' else 'Set12'} σ{g}" for s in SETS for g in SIGMAS) + " |"
    lines = [header, "|---|" + "---|" * 9]
    for name, overrides in variants.items():
        if args.only and name not in args.only:
            if name in earlier:
                lines.append(earlier[name])
            continue
        result = run_variant(raw_params, overrides or {}, splits)
        lines.append(f"| {name} | {result['steps']} | {result['minutes']:.1f} | {result['seconds']:.2f} | "
                     + " | ".join(f"{result[f'{s} {g}']:.2f}" for s in SETS for g in SIGMAS) + " |")
        print(lines[-1], flush=True)
    text = ("PSNR (dB) of the model alone: Set12 and every 4th BSD68 image (BSD68¼), σ 15/25/50, noise seed 0. Each variant "
            "changes the bench preset's `train` section as named; measured by `make levers` on this machine.\n\n" + "\n".join(lines) + "\n")
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
