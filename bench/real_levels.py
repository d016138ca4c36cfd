"""Which noise level suits each real crop, against what the model's own noise-level maps read there.

For each PolyU-Canon crop: the model's three noise-level maps (NoiseLevelMap at 1×, 2×, 4× pooling, 8-bit units,
what `--sigma auto` feeds the network) and its PSNR at `--sigma auto` and at each fixed level (`--sigma N`, every
map at N). Then the mean PSNR per setting, the mean of each crop's best setting (an oracle no estimator beats),
and the Spearman rank correlation of each map with the best fixed level: a calibration of `--sigma auto` that
maps the three readings to a level can gain only where these correlations are strong. A diagnostic on the test
crops; nothing here is fitted to them. `python bench/real_levels.py --model PATH [--levels 6 8 10 12 15 20]`.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from level_calibration import measure, oracle  # noqa: E402
from real_bench import pairs, read  # noqa: E402


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation, tied values (many crops share a best level) given their mean rank."""
    return float(spearmanr(a, b).statistic)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a .keras model with noise-level maps")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    parser.add_argument("--set", default="polyu-canon")
    parser.add_argument("--levels", type=float, nargs="+", default=[6, 8, 10, 12, 15, 20])
    args = parser.parse_args()
    crops = pairs(Path(args.data) / args.set)
    maps, auto, curves = measure(Path(args.model), ((read(n), read(c)) for _, n, c in crops), args.levels)
    scales = maps.shape[1]
    print(f"| crop | {' | '.join(f'map {2**k}×' for k in range(scales))} | auto | {' | '.join(f'σ {s:g}' for s in args.levels)} | best |")
    print("|---" * (scales + len(args.levels) + 3) + "|")
    for (name, _, _), reading, psnrs in zip(crops, maps, np.column_stack([auto, curves])):
        best = int(np.argmax(psnrs))
        print(f"| {name} | {' | '.join(f'{m:.2f}' for m in reading)} | {' | '.join(f'{p:.2f}' for p in psnrs)} | "
              f"{'auto' if best == 0 else f'{args.levels[best - 1]:g}'} |")
    best_fixed = np.array(args.levels)[np.argmax(curves, axis=1)]
    print(f"\n{len(crops)} crops of {args.set}, {args.model}: mean PSNR at auto {auto.mean():.2f}; "
          + ", ".join(f"σ {s:g} {m:.2f}" for s, m in zip(args.levels, curves.mean(axis=0)))
          + f"; each crop at its best setting (oracle) {oracle(auto, curves):.2f}, at its best fixed level {curves.max(axis=1).mean():.2f}")
    print("mean maps " + " / ".join(f"{m:.2f}" for m in maps.mean(axis=0)) + "; Spearman correlation with the best fixed level: "
          + ", ".join(f"map {2**k}× {spearman(maps[:, k], best_fixed):+.2f}" for k in range(scales)))


if __name__ == "__main__":
    main()
