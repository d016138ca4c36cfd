"""`make release`: a model that `denoise` uses out of the box, from a finished `make bench` work copy.

Copies WORK/models/model.keras to models/released/photo.keras (--out: gray.keras for the gray one) without the optimizer's state (a third of the
size; the .keras file stays any Keras 3's to load) and writes its provenance beside it, models/released/photo.json:
the preset and the commit that trained it, the training time, the work copy's test metrics (eval/metrics.json)
and, where `make bench-real` has run, the real-noise table. docs/models.md is the model card that reads it.
"""

import argparse
import datetime
import hashlib
import json
import os
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
LIMIT_MB = 10


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(ROOT / "bench" / "work-camera"), help="a `make bench` work copy (default: bench/work-camera)")
    parser.add_argument("--preset", default="bench/preset-camera.yaml")
    parser.add_argument("--commit", help="the commit whose code trained it (default: the work copy's SOURCE_COMMIT)")
    parser.add_argument("--out", default=str(ROOT / "models" / "released" / "photo.keras"))
    args = parser.parse_args()
    work, out = Path(args.work), Path(args.out)
    commit = args.commit or (work / "SOURCE_COMMIT").read_text().strip()

    from denoise.inference import load_model
    from denoise.storage import save_keras
    from denoise.training import train_seconds

    model = load_model(work / "models" / "model.keras")  # compile=False: no optimizer to save
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.keras")
    save_keras(model, tmp)
    size_mb = tmp.stat().st_size / 1e6
    if size_mb > LIMIT_MB:
        tmp.unlink()
        raise SystemExit(f"error: {work}/models/model.keras is {size_mb:.1f} MB without its optimizer; a released model must stay under {LIMIT_MB} MB")
    os.replace(tmp, out)
    state = json.loads((work / "checkpoints" / "train" / "state.json").read_text())
    metrics = json.loads((work / "eval" / "metrics.json").read_text())["test"]
    real = ROOT / "bench" / "results-real.md"
    color = yaml.safe_load((work / "params.yaml").read_text())["data"]["channels"] == 3  # the real-noise table scores color models
    provenance = {
        "file": out.name, "sha256": hashlib.sha256(out.read_bytes()).hexdigest(), "megabytes": round(out.stat().st_size / 1e6, 2),
        "preset": args.preset, "commit": commit, "released": datetime.date.today().isoformat(),
        "training_minutes": round(train_seconds(work / "checkpoints" / "train") / 60, 1), "best_val_psnr": state.get("best_val_psnr"),
        "test": {group: {m: values for m, values in methods.items() if m in ("noisy", "baseline", "model", "model_single_pass")}
                 for group, methods in metrics.items()},
        "real_noise_table": real.read_text() if real.is_file() and color else None,
    }
    side = out.with_suffix(".json")
    side.with_suffix(".tmp").write_text(json.dumps(provenance, indent=1) + "\n")
    os.replace(side.with_suffix(".tmp"), side)
    print(f"released {out} ({provenance['megabytes']} MB) from {work} (preset {args.preset}, commit {commit}); provenance: {side}")


if __name__ == "__main__":
    main()
