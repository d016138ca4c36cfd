"""Scoring methods side by side on full test images, and the figures that show the comparison."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import images, inference, metrics
from .config import EvaluateConfig
from .storage import Stack, atomic_path, write_json

SINGLE_PASS = "model_single_pass"  # the model's first view alone, scored beside "model" when evaluate.self_ensemble > 1


def score(clean: Stack, noisy: Stack, estimates: dict[str, list[np.ndarray]]) -> list[dict]:
    """One row per (noisy image, method): PSNR and SSIM against the clean image.

    `estimates` maps a method name to its outputs, aligned with `noisy`; the noisy input itself is
    always scored as the method "noisy".
    """
    truth = clean.by_name()
    rows = []
    for k, entry in enumerate(noisy.entries):
        reference = truth[entry["name"]]
        for method, outputs in {"noisy": noisy.images, **estimates}.items():
            rows.append({
                "name": entry["name"], "set": entry.get("set"), "group": entry["group"], "level": entry["level"], "method": method,
                "psnr": round(metrics.psnr(reference, outputs[k]), 4), "ssim": round(metrics.ssim(reference, outputs[k]), 4),
            })
    return rows


def summarize(rows: list[dict], level_key: str) -> dict:
    """Mean PSNR/SSIM per test set and noise level, and method:
    {"[set.]sigma_25": {method: {psnr, ssim}}}."""
    buckets = defaultdict(list)
    for row in rows:
        key = f"{row['set']}.{level_key}_{row['group']}" if row.get("set") else f"{level_key}_{row['group']}"
        buckets[key, row["method"]].append(row)
    summary: dict = defaultdict(dict)
    for (key, method), items in buckets.items():
        summary[key][method] = {
            "psnr": round(float(np.mean([r["psnr"] for r in items])), 3),
            "ssim": round(float(np.mean([r["ssim"] for r in items])), 4),
        }
    return dict(summary)


def _label(image: Image.Image, text: str) -> Image.Image:
    font = ImageFont.load_default(size=max(12, image.height // 24))
    canvas = image.convert("RGB")
    draw = ImageDraw.Draw(canvas)
    box = draw.textbbox((4, 4), text, font=font)
    draw.rectangle((box[0] - 3, box[1] - 3, box[2] + 3, box[3] + 3), fill=(0, 0, 0))
    draw.text((4, 4), text, fill=(255, 255, 255), font=font)
    return canvas


def comparison_panel(panels: list[tuple[str, np.ndarray]]) -> Image.Image:
    """Side-by-side strip of labelled H×W×C images (clean | noisy | baseline | model …)."""
    tiles = [_label(images.encode(np.clip(array, 0, 1)), text) for text, array in panels]
    gap = 4
    strip = Image.new("RGB", (sum(t.width for t in tiles) + gap * (len(tiles) - 1), tiles[0].height), "white")
    x = 0
    for tile in tiles:
        strip.paste(tile, (x, 0))
        x += tile.width + gap
    return strip


def evaluate(test: tuple[Stack, Stack], train: tuple[Stack, Stack], baseline: Stack, model_paths: dict[str, str], config: EvaluateConfig, level_key: str, out_dir: str | Path) -> dict:
    """Score every method on the test set and the model on a sample of training images; write
    metrics.json, per_image.json, plots/psnr.json and compare/*.png under out_dir."""
    out_dir = Path(out_dir)
    clean, noisy = test
    loaded = {name: inference.load_model(path) for name, path in model_paths.items()}
    estimates = {"baseline": baseline.images}
    for name, model in loaded.items():
        # tiles of 512² bound the memory for large test images (smaller ones are one pass)
        passes = [inference.views(lambda view: inference.predict_tiled(model, view), image, config.self_ensemble) for image in noisy.images]  # noqa: B023
        estimates[name] = [inference.mean_of_views(outputs) for outputs in passes]
        if config.self_ensemble > 1 and name == "model":  # its first view alone: the single pass, at no extra cost
            estimates[SINGLE_PASS] = [outputs[0] for outputs in passes]
    rows = score(clean, noisy, estimates)
    summary = summarize(rows, level_key)
    sample = Stack(train[1].entries[: config.train_sample], train[1].images[: config.train_sample])
    train_rows = score(train[0], sample, {"model": [inference.self_ensemble(lambda view: inference.predict_tiled(loaded["model"], view), image,
                                                                           config.self_ensemble) for image in sample.images]})
    train_summary = summarize([r for r in train_rows if r["method"] == "model"], level_key)
    write_json(out_dir / "metrics.json", {
        "test": summary,
        "train_sample": train_summary,
        "baseline_method": baseline.entries[0]["method"] if len(baseline) else "none",
    })
    write_json(out_dir / "per_image.json", {"test": rows, "train_sample": train_rows})
    write_json(out_dir / "plots" / "psnr.json", [
        {"method": m, "noise": g, "psnr": v["psnr"], "ssim": v["ssim"]}
        for g, methods in summary.items() for m, v in methods.items()
    ])
    _write_comparisons(out_dir / "compare", clean, noisy, estimates, rows, level_key, config.compare_images)
    return summary


def _write_comparisons(folder: Path, clean: Stack, noisy: Stack, estimates: dict, rows: list[dict], level_key: str, count: int) -> None:
    truth = clean.by_name()
    scores = {(r["name"], r["group"], r["method"]): r["psnr"] for r in rows}
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        chosen = list(dict.fromkeys(entry["name"] for entry in noisy.entries))[:count]
        for k, entry in enumerate(noisy.entries):
            if entry["name"] not in chosen:
                continue
            panels = [("clean", truth[entry["name"]])]
            for method, outputs in {"noisy": noisy.images, "baseline": estimates["baseline"], "model": estimates["model"]}.items():
                panels.append((f"{method} {scores[entry['name'], entry['group'], method]:.2f} dB", outputs[k]))
            stem = Path(entry["name"]).with_suffix("").as_posix().replace("/", "_")
            comparison_panel(panels).save(tmp / f"{stem}_{level_key}{entry['group']}.png")
