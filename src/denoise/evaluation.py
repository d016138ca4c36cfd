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


def estimated_sigma(image: np.ndarray) -> float:
    """A no-reference figure: the noise σ left in an image, in 8-bit units (skimage's wavelet estimator)."""
    from skimage.restoration import estimate_sigma

    return float(np.mean(estimate_sigma(image, channel_axis=-1))) * 255.0


def score(clean: Stack | None, noisy: Stack, estimates: dict[str, list[np.ndarray]]) -> list[dict]:
    """One row per (noisy image, method): PSNR and SSIM against the clean image; with no clean images
    (clean None: real noisy photos), the estimated noise σ left in each output instead.

    `estimates` maps a method name to its outputs, aligned with `noisy`; the noisy input itself is
    always scored as the method "noisy".
    """
    truth = clean.by_name() if clean is not None else {}
    rows = []
    for k, entry in enumerate(noisy.entries):
        for method, outputs in {"noisy": noisy.images, **estimates}.items():
            row = {"name": entry["name"], "set": entry.get("set"), "group": entry["group"], "level": entry["level"], "method": method}
            if clean is None:
                row["sigma"] = round(estimated_sigma(outputs[k]), 4)
            else:
                reference = truth[entry["name"]]
                row.update(psnr=round(metrics.psnr(reference, outputs[k]), 4), ssim=round(metrics.ssim(reference, outputs[k]), 4))
            rows.append(row)
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
        summary[key][method] = {name: round(float(np.mean([r[name] for r in items])), digits)
                                for name, digits in (("psnr", 3), ("ssim", 4), ("sigma", 3)) if name in items[0]}
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


def evaluate(test: tuple[Stack, Stack], train: tuple[Stack, Stack], baseline: Stack, model_paths: dict[str, str], config: EvaluateConfig, level_key: str,
             out_dir: str | Path, references: bool = True) -> dict:
    """Score every method on the test set and the model on a sample of training images; write
    metrics.json, per_image.json, plots/psnr.json and compare/*.png under out_dir. Without references
    (noise.type none: the photos are the noisy ones), the figures are each output's estimated noise σ."""
    out_dir = Path(out_dir)
    clean, noisy = test
    clean = clean if references else None
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
    train_rows = score(train[0] if references else None, sample, {"model": [inference.self_ensemble(lambda view: inference.predict_tiled(loaded["model"], view), image,
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
        for g, methods in summary.items() for m, v in methods.items() if "psnr" in v
    ])
    _write_comparisons(out_dir / "compare", clean, noisy, estimates, rows, level_key, config.compare_images)
    return summary


def _write_comparisons(folder: Path, clean: Stack | None, noisy: Stack, estimates: dict, rows: list[dict], level_key: str, count: int) -> None:
    """clean | noisy | baseline | model strips, each output labelled with its PSNR (or, with no clean images,
    the noise σ estimated in it)."""
    truth = clean.by_name() if clean is not None else None
    figure = "psnr" if clean is not None else "sigma"
    scores = {(r["name"], r["group"], r["method"]): r[figure] for r in rows}
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        chosen = list(dict.fromkeys(entry["name"] for entry in noisy.entries))[:count]
        for k, entry in enumerate(noisy.entries):
            if entry["name"] not in chosen:
                continue
            panels = [("clean", truth[entry["name"]])] if truth else []
            for method, outputs in {"noisy": noisy.images, "baseline": estimates["baseline"], "model": estimates["model"]}.items():
                value = scores[entry["name"], entry["group"], method]
                panels.append((f"{method} {value:.2f} dB" if truth else f"{method} σ≈{value:.1f}", outputs[k]))
            stem = Path(entry["name"]).with_suffix("").as_posix().replace("/", "_")
            comparison_panel(panels).save(tmp / f"{stem}_{level_key}{entry['group']}.png")
