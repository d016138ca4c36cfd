"""Can `--sigma auto` be calibrated on synthetic noise? A fit of one level from the three noise-level maps.

The model's own `--sigma auto` feeds the network its three map readings (NoiseLevelMap at 1×, 2×, 4×); the
alternative tried here feeds every map one level, log-linear in the readings: exp(a + b·log maps). a and b are
fitted to maximise the mean PSNR over patches cut and noised exactly as the training batches were (the work
copy's params, its training images, 256² patches, a mix of Gaussian and camera noise, camera patches zoomed),
never on a test set. Each patch's PSNR is measured at auto and at a ladder of fixed levels and interpolated in
log-level between them. Printed: the fitted a, b; then on the synthetic patches, on the work copy's test images
(per noise level) and on PolyU-Canon's crops, the mean PSNR at auto, calibrated, at the best single fixed level
and with each image at its best setting.
`python bench/level_calibration.py --work bench/work-camera-long` (6 min on 2 cores).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import yaml
from scipy.optimize import minimize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

LEVELS = (2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60)


def calibrated_level(maps: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """One level per row of map readings (8-bit units): exp(a + b · log maps)."""
    return np.exp(theta[0] + np.log(np.maximum(maps, 0.05)) @ theta[1:])


def psnr_at(curves: np.ndarray, levels, at: np.ndarray) -> np.ndarray:
    """Each row's PSNR at its level `at`, interpolated in log-level along its curve (PSNR at `levels`)."""
    x = np.clip(np.log(at), np.log(levels[0]), np.log(levels[-1]))
    return np.array([np.interp(x[k], np.log(levels), curves[k]) for k in range(len(curves))])


def fit(maps: np.ndarray, curves: np.ndarray, levels) -> np.ndarray:
    """theta maximising the mean interpolated PSNR, from a few starting points (Nelder-Mead)."""
    def loss(theta):
        return -psnr_at(curves, levels, calibrated_level(maps, theta)).mean()

    starts = np.eye(maps.shape[1] + 1)[1:]  # level = one map's reading, for each map
    results = [minimize(loss, start, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-4, "fatol": 1e-5}) for start in starts]
    return min(results, key=lambda r: r.fun).x


def oracle(auto: np.ndarray, curves: np.ndarray) -> float:
    """The mean PSNR with each image at its best setting (auto or a fixed level): no level estimate beats it."""
    return float(np.maximum(auto, curves.max(axis=1)).mean())


def measure(model: Path, pairs, levels=LEVELS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map readings (8-bit units), PSNR at auto, PSNR at each of `levels`, for (noisy, clean) pairs."""
    from denoise import metrics
    from denoise.inference import Denoiser
    from denoise.models import NoiseLevelMap

    denoisers = {s: Denoiser(model, sigma=s) for s in (None, *levels)}
    scales = next(layer.scales for layer in denoisers[None].engine.model.layers if isinstance(layer, NoiseLevelMap))
    reader = NoiseLevelMap(scales=scales)
    maps, auto, curves = [], [], []
    for noisy, clean in pairs:
        maps.append(np.asarray(reader(noisy[None].astype(np.float32)))[0, 0, 0] * NoiseLevelMap.UNIT * 255)
        auto.append(metrics.psnr(clean, denoisers[None](noisy)))
        curves.append([metrics.psnr(clean, denoisers[s](noisy)) for s in levels])
    return np.array(maps), np.array(auto), np.array(curves)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="a `make bench` work copy with a trained model and its split")
    parser.add_argument("--model", help="default: WORK/models/model.keras")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"), help="folder holding polyu-canon")
    parser.add_argument("--batches", type=int, default=25, help="synthetic batches of 8 patches of 256²")
    parser.add_argument("--seed", type=int, default=12345, help="the synthetic patches' seed (not training's)")
    args = parser.parse_args()
    from denoise.config import parse_params
    from denoise.datasets import load_split
    from denoise.sampling import PatchSampler
    from real_bench import pairs, read

    work = Path(args.work)
    model = Path(args.model or work / "models" / "model.keras")
    raw = yaml.safe_load((work / "params.yaml").read_text())
    raw["train"]["sampling"].update(patch_size=256, batch_size=8)
    raw["train"]["final"].update(epochs=0, patch_size=None, batch_size=None)
    raw["train"]["seed"] = args.seed
    params = parse_params(raw)
    sampler = PatchSampler(*load_split(work / "data" / "split", "train"), params.train, params.noise)
    synthetic = [pair for step in range(args.batches) for pair in zip(*sampler.batch(step))]
    clean, noisy = load_split(work / "data" / "split", "test")
    truth = clean.by_name()
    test = [(image, truth[entry["name"]]) for entry, image in noisy]
    test_levels = np.array([entry["level"] for entry in noisy.entries], float)
    real = [(read(n), read(c)) for _, n, c in pairs(Path(args.data) / "polyu-canon")]

    syn_maps, syn_auto, syn_curves = measure(model, synthetic)
    theta = fit(syn_maps, syn_curves, LEVELS)
    print(f"{len(synthetic)} synthetic 256² patches from {work}'s training images; fitted level = exp({theta[0]:.3f} + "
          + " + ".join(f"{b:.3f}·log map {2**k}×" for k, b in enumerate(theta[1:])) + ")\n")
    print("| images | auto | calibrated | mean calibrated level | best single fixed level | each at its best setting |")
    print("|---|---|---|---|---|---|")

    def line(name, maps, auto, curves):
        levels = calibrated_level(maps, theta)
        best_fixed = curves.mean(axis=0).argmax()
        print(f"| {name} | {auto.mean():.2f} | {psnr_at(curves, LEVELS, levels).mean():.2f} | {levels.mean():.1f} | "
              f"{curves.mean(axis=0)[best_fixed]:.2f} (σ {LEVELS[best_fixed]}) | {oracle(auto, curves):.2f} |", flush=True)

    line("synthetic patches (fitted on)", syn_maps, syn_auto, syn_curves)
    test_maps, test_auto, test_curves = measure(model, test)
    for level in np.unique(test_levels):
        rows = test_levels == level
        line(f"test images, σ {level:g}", test_maps[rows], test_auto[rows], test_curves[rows])
    line("PolyU-Canon, 55 crops", *measure(model, real))


if __name__ == "__main__":
    main()
