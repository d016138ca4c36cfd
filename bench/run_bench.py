"""`make bench`: the DnCNN protocol through the real pipeline, and one markdown table.

A copy of the project (its git-tracked files) in bench/work gets params.yaml with bench/preset.yaml
applied, then `dvc repro` runs every stage there; re-running resumes (DVC cache and training
checkpoints). The table has noisy, BM3D, the seed model and our model on the preset's test sets
(BSD68 and Set12; CBSD68 for the color presets) at σ 15/25/50, training wall minutes, and seconds per
image for BM3D and the model measured one after the other in this run. It is printed and written to
bench/results.md (bench/results-NAME.md for bench/preset-NAME.yaml). A preset may start from another
(`extends: preset-color.yaml`); every work copy shares one DVC cache (bench/cache), so a stage whose
code, data and params another preset already ran (BM3D on the same test set) is restored, not re-run.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SET_NAMES = {"bsd68": "BSD68", "set12": "Set12", "cbsd68": "CBSD68"}
SETS, SIGMAS = ("bsd68", "set12"), (15, 25, 50)  # the gray protocol's, which make levers reports
SINGLE_PASS = "model_single_pass"  # as denoise.evaluation.SINGLE_PASS (the table reads the work copy's metrics)


def model_label(train: dict, channels: int = 1, noise_levels=None) -> str:
    """A table row's name for a trained section (train, or a reference that is not the seed model); blind where
    it trains at a range of levels: its fresh_levels, or else the noise stage's (`noise_levels`, noise.sigma)."""
    model, sampling = train["model"], train["sampling"]
    kinds = ["color"] if channels == 3 else []
    kinds += ["Gaussian + camera noise"] if "camera" in (sampling.get("noise_types") or ()) else []
    if sampling.get("zoom"):
        zoom = sampling["zoom"]
        span = f"{zoom['min']}–{zoom['max']}×" if isinstance(zoom, dict) else f"{zoom}×"
        kinds += [f"{' and '.join(sampling.get('zoom_types') or ['all'])} patches zoomed {span}"]
    if train.get("target") == "neighbor2neighbor":
        kinds += ["Neighbor2Neighbor on one noisy copy per image (no clean image)"]
    elif not sampling.get("fresh_levels") and not isinstance(sampling.get("fresh_levels"), dict):
        kinds += ["supervised"]
    ours = "blind (ours)" if isinstance(sampling.get("fresh_levels") or noise_levels, dict) else "(ours)"
    if model["name"] == "unet":
        parts = [f"U-Net {model['width']}–{model['width'] * 4}", f"{model['depth']} block{'s' if model['depth'] > 1 else ''}/level"]
        parts += [f"{model['full_width']}-ch full-resolution ends"] if model.get("full_width") else []
        scales = model.get("noise_scales") or 1
        parts += [f"estimated noise map{f' at {scales} scales' if scales > 1 else ''}"] if model.get("noise_map") else []
    else:
        parts = [f"DnCNN-{model['depth']}×{model['width']}"]
    return ", ".join(parts + kinds) + (", " if ours.startswith("blind") else " ") + ours


def levels(params: dict) -> list:
    """The test noise levels: split.test_levels (where set) or noise.sigma, as a list."""
    sigma = params["split"].get("test_levels") or params["noise"]["sigma"]
    return list(sigma) if isinstance(sigma, list) else [sigma]


def median_seconds(run, repeats: int) -> float:
    """Median wall seconds of `repeats` calls of run(), after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def load_preset(path: Path) -> dict:
    """A preset file, on top of the preset it `extends` (a file in the same folder), if any."""
    from denoise.config import deep_merge

    preset = yaml.safe_load(path.read_text()) or {}
    parent = preset.pop("extends", None)
    return deep_merge(load_preset(path.parent / parent), preset) if parent else preset


def merge(base: dict, preset: dict, data: Path) -> dict:
    """params.yaml with the preset applied key by key (DATA/ standing for the datasets folder)."""
    from denoise.config import deep_merge

    return deep_merge(base, yaml.safe_load(yaml.safe_dump(preset).replace("DATA/", f"{data}/")))


def apply_sets(raw: dict, items: list[str]) -> dict:
    """params (a mapping) with each KEY=VALUE of `items` set: a dotted key, a YAML value (the short runs' --set)."""
    for item in items:
        key, _, value = item.partition("=")
        tree = raw
        for part in key.split(".")[:-1]:
            tree = tree[part]
        tree[key.split(".")[-1]] = yaml.safe_load(value)
    return raw


def test_sets(params: dict) -> list[str]:
    """The test sets' folder names, in the preset's order."""
    sources = params["split"]["test_source"]
    return [Path(source).name for source in ([sources] if isinstance(sources, str) else sources)]


def prepare_work(work: Path, data: Path, preset: Path, cache: Path) -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    work.mkdir(parents=True, exist_ok=True)
    for name in tracked:
        if name.startswith(("bench/", "eval/", "dvclive/", "checkpoints/")) or name == "dvc.lock":
            continue
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, work / name)
    params = merge(yaml.safe_load((ROOT / "params.yaml").read_text()), load_preset(preset), data)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    (work / "SOURCE_COMMIT").write_text(head + (" (with uncommitted changes)" if dirty else "") + "\n")  # provenance (bench/release.py)
    if not (work / ".git").exists():
        git(work, "init", "-q", "-b", "main")
    subprocess.run([sys.executable, "-m", "dvc", "cache", "dir", "--local", str(cache)], cwd=work, check=True)
    git(work, "add", "-A")
    # a new commit only when something changed: a resumed run keeps its experiments (make bench-tune's) on one baseline
    has_head = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=work, capture_output=True).returncode == 0
    unchanged = has_head and subprocess.run(["git", "diff", "--cached", "--quiet", "HEAD"], cwd=work).returncode == 0
    if not unchanged:
        git(work, "commit", "-qm", "bench")


def git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost", "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True)


def time_one_image(work: Path, data: Path) -> dict:
    """Seconds for one image of the first test set at σ = 25: BM3D, then each model (median of repeats)."""
    sys.path.insert(0, str(work / "src"))
    import numpy as np

    from denoise import images, inference
    from denoise.baseline import classical_denoise, resolve_method
    from denoise.config import load_params

    params = load_params(work / "params.yaml")
    method, ensemble = resolve_method(params.baseline.method, "gaussian"), params.evaluate.self_ensemble

    first = sorted((data / test_sets(yaml.safe_load((work / "params.yaml").read_text()))[0]).glob("*.png"))[0]
    clean = images.to_channels(images.read_image(first).pixels, params.data.channels)
    noisy = clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape).astype(np.float32)

    seconds = {"shape": list(clean.shape), "set": SET_NAMES.get(first.parent.name, first.parent.name), "method": method, "ensemble": ensemble,
               "baseline": median_seconds(lambda: classical_denoise(noisy, method, "gaussian", 25.0), 2)}
    for name, path in (("reference", "models/reference.keras"), ("model", "models/model.keras")):
        network = inference.load_model(work / path)
        seconds[name] = median_seconds(lambda: inference.predict(network, noisy, ensemble), 5)  # noqa: B023
        if name == "model" and ensemble > 1:
            seconds[SINGLE_PASS] = median_seconds(lambda: inference.predict(network, noisy), 5)  # noqa: B023
    return seconds


def table(work: Path, seconds: dict) -> str:
    params = yaml.safe_load((work / "params.yaml").read_text())
    sets, channels = test_sets(params), params["data"]["channels"]
    metrics = json.loads((work / "eval" / "metrics.json").read_text())["test"]
    from denoise.training import train_seconds

    minutes = {name: train_seconds(work / "checkpoints" / folder) / 60 for name, folder in (("reference", "reference"), ("model", "train"))}
    sigmas = levels(params)
    header = [f"{SET_NAMES.get(s, s)} σ{sigma:g}" for s in sets for sigma in sigmas]
    bm3d = "CBM3D" if channels == 3 else "BM3D"
    size = f"{seconds['shape'][1]}×{seconds['shape'][0]}"
    lines = ["| method | " + " | ".join(header) + f" | training (min) | s per {size} image | speed vs {bm3d} |",
             "|---|" + "---|" * (len(header) + 3)]
    label = model_label(params["train"], channels, params["noise"]["sigma"])
    reference = params["reference"]
    reference_label = "seed model (original design)" if reference["model"]["name"] == "seed" else model_label(reference, channels, params["noise"]["sigma"])
    rows = [("noisy", "noisy input"), ("baseline", f"{bm3d} (baseline stage)"), ("reference", reference_label)]
    if seconds["ensemble"] > 1:  # time_one_image read evaluate.self_ensemble
        rows += [(SINGLE_PASS, f"{label}, one pass"), ("model", f"{label}, ×{seconds['ensemble']} self-ensemble")]
        minutes[SINGLE_PASS] = minutes["model"]
    else:
        rows += [("model", label)]
    for key, label in rows:
        cells = [f"{metrics[f'{s}.sigma_{sigma}'][key]['psnr']:.2f} / {metrics[f'{s}.sigma_{sigma}'][key]['ssim']:.3f}" for s in sets for sigma in sigmas]
        train = f"{minutes[key]:.1f}" if key in minutes else "–"
        speed = f"{seconds[key]:.2f}" if key in seconds else "–"
        ratio = f"{seconds['baseline'] / seconds[key]:.0f}×" if key in ("reference", "model", SINGLE_PASS) else ("1×" if key == "baseline" else "–")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {train} | {speed} | {ratio} |")
    return "\n".join(lines)


def clean_reference_report(work: Path, data: Path, pipeline_minutes: float) -> str:
    """The PSNR / SSIM table of a preset with clean test images, and how its figures were measured."""
    seconds = time_one_image(work, data)
    return (f"PSNR (dB) / SSIM, {'color' if seconds['shape'][-1] == 3 else 'gray'} images, Gaussian noise not clipped, noise seed 0; one blind model for all σ. Measured by `make bench` "
            f"on {os.cpu_count()} CPU cores ({platform.machine()}); this `dvc repro` took {pipeline_minutes:.1f} min.\n\n"
            f"{table(work, seconds)}\n\nSeconds per image: median of repeats on a {seconds['shape'][1]}×{seconds['shape'][0]} "
            f"{seconds['set']} image at σ 25, the baseline ({seconds['method']}) and the models one after the other in the same run."
            + (f" ×{seconds['ensemble']} self-ensemble (`evaluate.self_ensemble`): each network's output is the mean of its outputs for "
               f"the first {seconds['ensemble']} flips/rotations of the input (`denoise.inference.VIEWS`: the image, turned 180°, …); "
               "one pass: the same trained model on the image alone." if seconds["ensemble"] > 1 else "") + "\n")


def noisy_only_summary(work: Path, pipeline_minutes: float) -> str:
    """A preset of noisy photos with no clean versions (noise.type none): the estimated noise σ left by each
    method on each test set (evaluate's no-reference figure) and where the model is, for bench-real to score."""
    metrics = json.loads((work / "eval" / "metrics.json").read_text())["test"]
    from denoise.training import train_seconds

    minutes = train_seconds(work / "checkpoints" / "train") / 60
    order = ("noisy", "baseline", "reference", "model")
    methods = sorted(next(iter(metrics.values())), key=lambda m: order.index(m) if m in order else len(order))
    lines = ["| test set | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    lines += [f"| {key.split('.')[0] if '.' in key else key} | " + " | ".join(f"{metrics[key][m]['sigma']:.2f}" for m in methods) + " |"
              for key in metrics]
    model = work / "models" / "model.keras"
    return (f"Noisy photos only (noise.type none): estimated noise σ (8-bit, skimage's wavelet estimator) of each output, "
            f"no clean image anywhere. Measured by `make bench` on {os.cpu_count()} CPU cores ({platform.machine()}); "
            f"this `dvc repro` took {pipeline_minutes:.1f} min, {minutes:.1f} of them training.\n\n" + "\n".join(lines)
            + f"\n\nStrips: {work / 'eval' / 'compare'}. The model, {model.relative_to(ROOT) if model.is_relative_to(ROOT) else model}, "
            "is scored against references, where a set has them, by `make bench-real MODEL=...`.\n")


def tune_report(work: Path, space: Path, trials: int) -> str:
    """`make tune` over the preset (its params.yaml in `work`): the study's trials, each a DVC experiment of the
    work copy, then the study as a table and the best trial's values."""
    tuner = [sys.executable, "-m", "denoise.tuning", "--storage", ".optuna/journal.log", "--study", "tune"]  # it puts its Python on its workers' PATH
    started = time.perf_counter()
    subprocess.run([*tuner, "--space", str(space), "--trials", str(trials)], cwd=work, check=True)
    minutes = (time.perf_counter() - started) / 60
    shown = subprocess.run([*tuner, "--show"], cwd=work, check=True, capture_output=True, text=True).stdout
    return (f"`make bench-tune` ({space.name} over the preset in {work.name}; {os.cpu_count()} CPU cores, {platform.machine()}): "
            f"{trials} trials, each a DVC experiment of the work copy (`dvc exp show` there), objective the best validation PSNR; "
            f"this run took {minutes:.1f} min (a resumed study counts only the rest).\n\n{shown}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"), help="folder holding the preset's data sets (train400, bsd68, set12; cbsd432, cbsd68)")
    parser.add_argument("--work", help="default: bench/work, or bench/work-NAME for a preset-NAME.yaml")
    parser.add_argument("--cache", default=str(ROOT / "bench" / "cache"), help="the DVC cache every work copy shares")
    parser.add_argument("--preset", default=str(ROOT / "bench" / "preset.yaml"))
    parser.add_argument("--out", help="default: bench/results.md, or bench/results-NAME.md for a preset-NAME.yaml")
    parser.add_argument("--tune", metavar="SPACE", help="instead of the table: `make tune` with this search-space file over the preset "
                        "(in its own work copy, bench/work-tune[-NAME]), written to bench/tune[-NAME].md")
    parser.add_argument("--trials", type=int, default=12, help="with --tune: trials to finish in all (a rerun resumes the study)")
    args = parser.parse_args()
    suffix = Path(args.preset).stem.removeprefix("preset")
    kind = "tune" if args.tune else "results"
    args.out = args.out or str(ROOT / "bench" / f"{kind}{suffix}.md")
    data, work = Path(args.data).resolve(), Path(args.work or ROOT / "bench" / f"work{'-tune' if args.tune else ''}{suffix}").resolve()
    preset = load_preset(Path(args.preset))
    needed = [Path(preset["data"]["source"]).name, *test_sets(preset)]
    for name in needed:
        if not (data / name).is_dir():
            raise SystemExit(f"error: {data / name} not found; pass --data (make bench DATA=...) with {', '.join(needed)}")
    prepare_work(work, data, Path(args.preset), Path(args.cache).resolve())
    # the baseline's results by input (src/denoise/baseline.py): a change to a module the stage imports re-runs it, not CBM3D
    os.environ.setdefault("DENOISE_BASELINE_CACHE", str(Path(args.cache).resolve() / "baseline"))
    if args.tune:
        Path(args.out).write_text(tune_report(work, Path(args.tune).resolve(), args.trials))
        print(Path(args.out).read_text())
        return
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=work, check=True)
    pipeline_minutes = (time.perf_counter() - started) / 60
    if preset["noise"]["type"] == "none":  # noisy photos alone: no clean image to score against here
        text = noisy_only_summary(work, pipeline_minutes)
    else:
        text = clean_reference_report(work, data, pipeline_minutes)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
