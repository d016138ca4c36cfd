"""`make report BASE=<rev>`: a markdown report of what changed against BASE — params and metrics
diffs (from DVC), training curves and PSNR per method rendered to PNG, and the comparison strips
of BASE and of the workspace side by side. BASE is read from git and the DVC cache; nothing of it
is retrained."""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

CURVES = {"training loss": "plots/metrics/train/loss.tsv", "validation PSNR (dB)": "plots/metrics/eval/psnr.tsv"}
MODELS = ("train", "reference")


def dvc(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed: {result.stderr.strip().splitlines()[-1:]}")
    return result.stdout


def short(rev: str) -> str:
    """A full commit hash shortened for labels; names like HEAD~1 or origin/main stay as they are."""
    return rev[:10] if len(rev) == 40 and all(c in "0123456789abcdef" for c in rev) else rev


def git_show(rev: str, path: str) -> str | None:
    result = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
    return result.stdout if result.returncode == 0 else None


def read_tsv(text: str | None) -> tuple[list[float], list[float]]:
    if not text:
        return [], []
    rows = list(csv.reader(io.StringIO(text), delimiter="\t"))[1:]
    return [float(r[0]) for r in rows], [float(r[1]) for r in rows]


def plot_curves(base: str, out: Path) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for axis, (title, tail) in zip(axes, CURVES.items()):
        for model in MODELS:
            path = f"dvclive/{model}/{tail}"
            local = Path(path)
            for label, text, style in ((base, git_show(base, path), "--"), ("workspace", local.read_text() if local.exists() else None, "-")):
                x, y = read_tsv(text)
                if x:
                    axis.plot([v + 1 for v in x], y, style, label=f"{model} ({label})")
        axis.set_title(title)
        axis.set_xlabel("epoch")
        if "loss" in title:
            axis.set_yscale("log")  # BCE and L1 losses differ by an order of magnitude
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)


def plot_psnr(base_rows: list[dict], rows: list[dict], base: str, out: Path) -> None:
    keys = sorted({(r["noise"], r["method"]) for r in base_rows + rows})
    labels = [f"{m}\n{n}" for n, m in keys]
    figure, axis = plt.subplots(figsize=(max(5, 1.2 * len(keys)), 3.6))
    width = 0.4
    for offset, (label, data) in ((-width / 2, (base, base_rows)), (width / 2, ("workspace", rows))):
        lookup = {(r["noise"], r["method"]): r["psnr"] for r in data}
        axis.bar([k + offset for k in range(len(keys))], [lookup.get(key, 0) for key in keys], width, label=label)
    axis.set_xticks(range(len(keys)), labels, fontsize=8)
    axis.set_ylabel("PSNR (dB)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)


def base_image(rev: str, path: str) -> Image.Image | None:
    import dvc.api

    try:
        with dvc.api.open(path, rev=rev, mode="rb") as handle:
            return Image.open(io.BytesIO(handle.read())).convert("RGB")
    except Exception:
        return None


def side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    canvas = Image.new("RGB", (max(left.width, right.width), left.height + right.height + 6), "white")
    canvas.paste(left, (0, 0))
    canvas.paste(right, (0, left.height + 6))
    return canvas


def build(base: str, out_md: Path) -> str:
    base = short(base)
    folder = out_md.parent / "report"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"# Denoising report: workspace vs `{base}`", ""]
    base_metrics = git_show(base, "eval/metrics.json")
    lines += ["## Params", "", dvc("params", "diff", base, "--md").strip() or "No params changed.", ""]
    lines += ["## Metrics", ""]
    if base_metrics is None:
        lines += [f"`{base}` has no committed metrics (eval/metrics.json), so there is nothing to diff against.", ""]
        lines += ["Workspace metrics:", "", dvc("metrics", "show", "--md").strip(), ""]
    else:
        lines += [dvc("metrics", "diff", base, "--md", "--precision", "3").strip() or "No metric changed.", ""]
    plot_curves(base, folder / "curves.png")
    rows = json.loads(Path("eval/plots/psnr.json").read_text()) if Path("eval/plots/psnr.json").exists() else []
    base_rows = json.loads(git_show(base, "eval/plots/psnr.json") or "[]")
    plot_psnr(base_rows, rows, base, folder / "psnr.png")
    lines += ["## Training curves", "", "![training curves](report/curves.png)", "", "## PSNR per method", "", "![PSNR per method](report/psnr.png)", ""]
    lines += ["## Comparison images", "", f"Top: `{base}`; bottom: workspace (clean | noisy | baseline | model).", ""]
    for path in sorted(Path("eval/compare").glob("*.png")):
        current = Image.open(path).convert("RGB")
        old = base_image(base, path.as_posix())
        if old is None:
            lines += [f"- `{path.name}`: not available for `{base}` (not in the DVC cache or remote); workspace only.", ""]
            combined = current
        else:
            combined = side_by_side(old, current)
        combined.save(folder / path.name)
        lines += [f"![{path.stem}](report/{path.name})", ""]
    text = "\n".join(lines)
    out_md.write_text(text)
    return text


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare the workspace against")
    parser.add_argument("--out", default="report.md")
    args = parser.parse_args(argv)
    build(args.base, Path(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
