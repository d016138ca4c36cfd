"""`make bench` end to end on tiny stand-ins for train400, BSD68 and Set12 (real data: make bench)."""

import json
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from denoise.config import deep_merge, parse_params
from tiny_repo import ROOT, TINY, env

sys.path.insert(0, str(ROOT / "bench"))
import run_bench  # noqa: E402


def write_stand_ins(folder: Path, sets, seed: int) -> None:
    """Tiny gray stand-ins for the bench's data sets: for each (name, count, (width, height)), that many PNGs of
    random sine gratings in folder/name."""
    rng = np.random.default_rng(seed)
    for name, count, size in sets:
        (folder / name).mkdir(parents=True)
        for k in range(count):
            y, x = np.mgrid[0 : size[1], 0 : size[0]]
            image = 128 + 90 * np.sin(x / rng.uniform(2, 6) + y / rng.uniform(2, 6))
            Image.fromarray(image.astype(np.uint8)).save(folder / name / f"{k:03d}.png")


def test_bench_runs_the_pipeline_and_prints_the_table(tmp_path):
    write_stand_ins(tmp_path / "data", (("train400", 8, (48, 40)), ("bsd68", 2, (40, 32)), ("set12", 2, (32, 32))), seed=0)
    preset = yaml.safe_load((ROOT / "bench" / "preset.yaml").read_text())
    preset = deep_merge(preset, {section: TINY[section] for section in ("train", "reference", "evaluate")})
    preset["baseline"] = {"method": "nlm", "workers": 2}
    preset["split"]["val_fraction"] = 0.2
    (tmp_path / "preset.yaml").write_text(yaml.safe_dump(preset))
    bench = [sys.executable, str(ROOT / "bench" / "run_bench.py"), "--data", str(tmp_path / "data"), "--work", str(tmp_path / "work"),
             "--cache", str(tmp_path / "cache"), "--preset", str(tmp_path / "preset.yaml"), "--out", str(tmp_path / "results.md")]
    result = subprocess.run(bench, env=env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = [line for line in (tmp_path / "results.md").read_text().splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| method | BSD68 σ15 | BSD68 σ25 | BSD68 σ50 | Set12 σ15")
    labels = [row.split("|")[1].strip() for row in rows[1:]]
    assert labels[:3] == ["noisy input", "BM3D (baseline stage)", "seed model (original design)"]
    assert preset["evaluate"]["self_ensemble"] == 2  # the preset's: the model's one pass and its self-ensemble, from one training
    assert labels[3].endswith("blind (ours), one pass") and labels[4].endswith("blind (ours), ×2 self-ensemble") and len(labels) == 5
    noisy = [float(cell.split("/")[0]) for cell in rows[1].split("|")[2:8]]
    assert noisy[0] > noisy[1] > noisy[2] and noisy[3] > noisy[4] > noisy[5]  # noisier input scores lower
    assert rows[4].split("|")[-2].strip().endswith("×") and rows[5].split("|")[-2].strip().endswith("×")
    assert rows[4].split("|")[2:8] != rows[5].split("|")[2:8]

    # make levers on the split that bench prepared: one row per variant, each with its own changes, which
    # are parsed as params.yaml's own keys (fresh_levels: 15 becomes a level, not a bare number)
    changes = {"loss": "mse", "steps_per_epoch": 2, "sampling": {"fresh_levels": 15}, "model": {"noise_map": True}}
    (tmp_path / "levers.yaml").write_text(yaml.safe_dump({"variants": {"as preset": {}, "mse": changes}}))
    command = [sys.executable, str(ROOT / "bench" / "levers.py"), "--work", str(tmp_path / "work"), "--variants", str(tmp_path / "levers.yaml"),
               "--out", str(tmp_path / "levers.md")]
    result = subprocess.run(command, env=env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = [line.split("|") for line in (tmp_path / "levers.md").read_text().splitlines() if line.startswith("| ")][1:]
    assert [row[1].strip() for row in rows] == ["as preset", "mse"]
    assert [int(row[2]) for row in rows] == [TINY["train"]["epochs"] * TINY["train"]["steps_per_epoch"], TINY["train"]["epochs"] * 2]
    assert all(float(cell) > 0 for row in rows for cell in row[5:11])

    # --only re-runs the named variants and keeps the other rows
    first = (tmp_path / "levers.md").read_text().splitlines()
    result = subprocess.run(command + ["--only", "mse"], env=env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    again = (tmp_path / "levers.md").read_text().splitlines()
    assert again[4] == first[4] and again[5].startswith("| mse | 4 |") and len(again) == len(first)


@pytest.mark.parametrize("preset", sorted(p.name for p in (ROOT / "bench").glob("preset*.yaml")))
def test_every_bench_preset_is_valid_params(preset, tmp_path):
    for folder in ("train400", "bsd68", "set12", "cbsd432", "cbsd68", "polyu-canon", "rni15"):
        (tmp_path / folder).mkdir()
    raw = run_bench.merge(yaml.safe_load((ROOT / "params.yaml").read_text()), run_bench.load_preset(ROOT / "bench" / preset), tmp_path)
    params = parse_params(raw)
    assert params.train.model.name == "unet" and params.reference.final.epochs == 0
    if params.noise.type == "none":  # noisy photos alone: nothing supervised can train; no table rows but the model's
        assert params.train.self_supervised and params.reference.self_supervised and params.data.pattern != "*"
    elif params.train.self_supervised:  # the reference row: the same network, supervised
        assert not params.train.sampling.fresh_noise and params.reference.target == "clean" and params.reference.model == params.train.model
    else:  # blind models against the original design
        assert params.train.sampling.fresh_levels is not None and params.reference.model.name == "seed"
    assert run_bench.test_sets(raw) and all(Path(source).is_dir() for source in params.split.test_source)


def test_the_blind_self_supervised_preset_is_labelled_blind_and_tabled_at_its_test_levels(tmp_path):
    """bench/preset-n2n-blind.yaml: both rows train at the noise stage's range of σ, so both are blind; the table's
    columns are split.test_levels, not that range. The fixed-σ preset's rows are not blind."""
    for folder in ("train400", "bsd68", "set12"):
        (tmp_path / folder).mkdir()
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    for preset, blind in (("preset-n2n-blind.yaml", True), ("preset-n2n.yaml", False)):
        raw = run_bench.merge(base, run_bench.load_preset(ROOT / "bench" / preset), tmp_path)
        labels = [run_bench.model_label(raw[section], 1, raw["noise"]["sigma"]) for section in ("train", "reference")]
        assert all(label.endswith("blind (ours)") == blind for label in labels), labels
        assert run_bench.levels(raw) == ([15, 25, 50] if blind else [25])


def test_noisy_only_presets_get_a_no_reference_summary(tmp_path):
    """A noise.type none preset has no PSNR table: each method's estimated σ per test set, and the model's path."""
    (tmp_path / "eval").mkdir()
    (tmp_path / "checkpoints" / "train").mkdir(parents=True)
    figures = {"baseline": {"sigma": 1.25}, "model": {"sigma": 2.125}, "noisy": {"sigma": 9.5}, "reference": {"sigma": 4.0}}  # as json sorts them
    (tmp_path / "eval" / "metrics.json").write_text(json.dumps({"test": {"rni15.sigma_real": figures}}))
    (tmp_path / "checkpoints" / "train" / "time.json").write_text(json.dumps({"train_seconds": 90}))
    text = run_bench.noisy_only_summary(tmp_path, 2.5)
    assert "| test set | noisy | baseline | reference | model |" in text and "| rni15 | 9.50 | 1.25 | 4.00 | 2.12 |" in text and "took 2.5 min, 1.5 of them training" in text
    assert str(tmp_path / "models" / "model.keras") in text


def test_bench_scale_runs_the_stages_on_a_tiny_data_set_and_prints_its_table(tmp_path):
    """make bench-scale with 6 photos of 2048² (0.1 GB) instead of 600 and a 3 × 3-step train: every stage runs
    in the copy, and the table has a row per stage with seconds and peak memory."""
    command = [sys.executable, str(ROOT / "bench" / "scale.py"), "--gb", "0.1", "--small", "3", "--steps-per-epoch", "3",
               "--work", str(tmp_path / "work"), "--data", str(tmp_path / "no-datasets")]
    result = subprocess.run(command, env=env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    assert [row[0].strip() for row in rows[1:]] == ["prepare", "prepare, 1 core", "noise", "split", "train"]
    assert all(float(row[1]) >= 0 and float(row[2]) > 0 for row in rows[1:])  # seconds (rounded), peak RSS in GB
    assert "6 gray photos of 2048², 0.1 GB of decoded float32 pixels" in result.stdout
    assert len(list((tmp_path / "work" / "large" / "data" / "prepared").glob("shard-*.npy"))) >= 1


def test_self_supervised_short_run_logs_its_scores(tmp_path):
    """bench/self_supervised_short.py on tiny stand-ins: trains the preset's Neighbor2Neighbor for a few steps and
    appends one JSON line with its BSD68 / Set12 scores, one pass and ×8; with --every-epoch, each epoch's too."""
    write_stand_ins(tmp_path / "data", (("train400", 14, (48, 48)), ("bsd68", 2, (48, 48)), ("set12", 2, (48, 48))), seed=1)
    log = tmp_path / "runs.jsonl"
    command = [sys.executable, str(ROOT / "bench" / "self_supervised_short.py"), "--name", "tiny", "--steps", "4", "--steps-per-epoch", "2",
               "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--log", str(log),
               "--set", "train.sampling.patch_size=32", "--set", "train.sampling.batch_size=2", "--set", "train.model.width=8"]
    result = subprocess.run(command, env=env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    line = json.loads(log.read_text())
    assert line["name"] == "tiny" and line["steps"] == 4 and line["section"] == "train"
    scores = [line[f"{name}_x{k}"] for name in ("bsd68", "set12") for k in (1, 8)]
    assert all(np.isfinite(scores)) and (tmp_path / "out" / "tiny" / "model.keras").exists()
    blind = [*command, "--preset", str(ROOT / "bench" / "preset-n2n-blind.yaml"), "--name", "tiny-blind", "--every-epoch"]  # test σ 15 / 25 / 50
    result = subprocess.run(blind, env=env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    line = json.loads(log.read_text().splitlines()[-1])
    scores = [line[f"{name}_s{sigma}_x{k}"] for name in ("bsd68", "set12") for sigma in (15, 25, 50) for k in (1, 8)]
    assert all(np.isfinite(scores)) and line["bsd68_s15_x1"] > line["bsd68_s50_x1"]  # noisier input scores lower
    assert [epoch["epoch"] for epoch in line["epochs"]] == [1, 2]  # --every-epoch: each epoch's one-pass scores and validation figures
    best = line["epochs"][line["best_epoch"] - 1]
    assert best["val_psnr"] == max(epoch["val_psnr"] for epoch in line["epochs"]) and best["bsd68_s25_x1"] == line["bsd68_s25_x1"]


def test_set_overrides_take_dotted_keys_and_yaml_values():
    raw = {"train": {"sampling": {"zoom": None, "patch_size": 64}, "target": "clean"}}
    run_bench.apply_sets(raw, ["train.sampling.zoom={min: 1, max: 4}", "train.sampling.patch_size=128", "train.target=neighbor2neighbor"])
    assert raw == {"train": {"sampling": {"zoom": {"min": 1, "max": 4}, "patch_size": 128}, "target": "neighbor2neighbor"}}


def test_real_errors_bands_add_up_to_the_error_and_a_blurrier_reference_favours_a_blur():
    """bench/real_errors.py splits an error into an offset and four frequency bands that sum back to it, each
    band holding what its name says; the blur column is positive where the reference is smoother than the output."""
    import real_errors
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    error = rng.normal(0, 0.01, (64, 64, 3)).astype(np.float32) + 0.02
    parts = real_errors.bands(error)
    np.testing.assert_allclose(sum(parts), error, atol=1e-6)
    assert np.allclose(parts[0], 0.02, atol=0.005) and np.mean(parts[4] ** 2) > 3 * np.mean(parts[3] ** 2)  # white noise: mostly < 1 px
    sharp = gaussian_filter(rng.uniform(0, 1, (64, 64, 3)), (1, 1, 0)).astype(np.float32)
    assert real_errors.figures(sharp, gaussian_filter(sharp, (0.6, 0.6, 0)))[-1] > 0
    assert real_errors.figures(sharp, sharp + 0.001)[-1] < 0


def test_real_bench_append_puts_new_model_rows_below_the_old_ones_and_refuses_another_table():
    import real_bench

    fixed = ["| method | all | subset | s |", "|---|---|---|---|", "| noisy input | 36 | 35 | – |", "| CBM3D est | – | 35 | – |",
             "| CBM3D tuned | – | 38 | – |"]
    old = "\n".join(["Intro.", "", *fixed, "| model A | 38 | 38 | 1 |", "", "Sweep.", "", "How A was made."]) + "\n"
    new = "\n".join(["Intro, this run.", "", *fixed, "| model B | 39 | 39 | 1 |", "| B at σ 10 | 40 | 40 | 1 |", "", "Sweep, this run."]) + "\n"
    merged = real_bench.append_rows(old, new, "B: `cmd`.", "out.md").splitlines()
    assert merged[:8] == ["Intro.", "", *fixed, "| model A | 38 | 38 | 1 |"]
    assert merged[8:10] == ["| model B | 39 | 39 | 1 |", "| B at σ 10 | 40 | 40 | 1 |"]
    assert merged[10:] == ["", "Sweep.", "", "How A was made. B: `cmd`."]
    other = new.replace("| CBM3D tuned | – | 38 |", "| CBM3D tuned | – | 37 |")
    with pytest.raises(SystemExit, match="error: out.md: its header, noisy or CBM3D rows are not this run's"):
        real_bench.append_rows(old, other, "B", "out.md")


def test_real_levels_reports_each_setting_and_an_oracle_no_setting_beats(tmp_path):
    """bench/real_levels.py on two tiny noisy/reference pairs and an untrained 3-map model: a row per crop with
    its three map readings, and an oracle (each crop's best setting) at least as high as every setting's mean."""
    import re

    from denoise.models import unet
    import real_levels

    assert real_levels.spearman(np.array([1.0, 2, 3, 4]), np.array([10.0, 20, 25, 90])) == pytest.approx(1)
    assert real_levels.spearman(np.array([1.0, 2, 3, 4]), np.array([4.0, 3, 2, 1])) == pytest.approx(-1)
    rng = np.random.default_rng(0)
    (tmp_path / "set").mkdir()
    for k in range(2):
        clean = np.clip(128 + 60 * np.sin(np.mgrid[0:48, 0:64][1] / (3 + k))[..., None] + np.zeros(3), 0, 255)
        Image.fromarray(clean.astype(np.uint8)).save(tmp_path / "set" / f"c{k}_mean.png")
        Image.fromarray(np.clip(clean + rng.normal(0, 12, clean.shape), 0, 255).astype(np.uint8)).save(tmp_path / "set" / f"c{k}_real.png")
    unet(3, 1, 8, noise_map=True, noise_scales=3).save(tmp_path / "model.keras")
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "real_levels.py"), "--model", str(tmp_path / "model.keras"),
                          "--data", str(tmp_path), "--set", "set", "--levels", "5", "20"], capture_output=True, text=True, env=env(), check=True).stdout
    rows = [line for line in out.splitlines() if re.match(r"\| c\d ", line)]
    assert [row.split(" | ")[0] for row in rows] == ["| c0", "| c1"] and all(len(row.split(" | ")) == 8 for row in rows)
    means = [float(x) for x in re.findall(r"(?:auto|σ \d+) (\d+\.\d+)", out)]
    oracle = float(re.search(r"\(oracle\) (\d+\.\d+)", out).group(1))
    assert len(means) == 3 and oracle >= max(means) and "Spearman correlation" in out


def test_level_calibration_recovers_the_level_each_image_wants():
    """bench/level_calibration.py's fit: where every image's PSNR peaks at twice its first map's reading, the
    fitted levels are that, as good as the true rule; interpolation is exact on the ladder."""
    import level_calibration as lc

    rng = np.random.default_rng(0)
    maps = rng.uniform(2, 25, (40, 3))
    levels = np.array(lc.LEVELS, float)
    curves = 40 - (np.log(levels)[None] - np.log(2 * maps[:, :1])) ** 2
    fitted = lc.calibrated_level(maps, lc.fit(maps, curves, levels))
    assert np.median(np.abs(fitted / (2 * maps[:, 0]) - 1)) < 0.1
    truth = lc.psnr_at(curves, levels, lc.calibrated_level(maps, np.array([np.log(2), 1, 0, 0])))
    assert lc.psnr_at(curves, levels, fitted).mean() >= truth.mean() - 1e-3
    assert lc.psnr_at(curves, levels, np.full(40, 2.0)).mean() < truth.mean() - 1  # a wrong level scores lower
    np.testing.assert_allclose(lc.psnr_at(curves, levels, np.full(40, 12.0)), curves[:, list(levels).index(12)])
