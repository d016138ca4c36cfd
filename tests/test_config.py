import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from denoise.config import Levels, load_params, parse_params
from denoise.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def defaults():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_committed_params_are_valid(monkeypatch):
    monkeypatch.chdir(ROOT)
    params = load_params("params.yaml")
    assert params.noise.levels == Levels(values=(25.0,))
    assert params.reference.model == "seed"


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("train", "lossy", 1, "train.lossy: unknown key"),
        ("train", "epochs", "ten", "train.epochs: expected an integer"),
        ("train", "epochs", 0, "train.epochs: 0 is too small"),
        ("noise", "sigma", -5, "noise.sigma: -5 is out of range"),
        ("noise", "sigma", {"min": 30, "max": 10}, "noise.sigma: min (30) must not exceed max (10)"),
        ("split", "test_fraction", 1.0, "split.test_fraction: 1.0 must be strictly between 0 and 1"),
        ("split", "test_fraction", 0, "split.test_fraction: 0.0 must be strictly between 0 and 1"),
        ("train", "model", "unet9000", "train.model: unknown value 'unet9000'; allowed: seed, dncnn, unet"),
        ("train", "loss", "huber", "train.loss: unknown value 'huber'; allowed: bce, mse, l1, rmse, psnr"),
        ("noise", "type", "pink", "noise.type: unknown value 'pink'"),
        ("data", "source", "/no/such/folder", "data.source: '/no/such/folder' is neither a folder of images nor a .txt list"),
        ("split", "test_source", "params.yaml", "split.test_source: 'params.yaml' is neither a folder"),
        ("data", "channels", 2, "data.channels: unknown value 2; allowed: 1, 3"),
        ("train", "fresh_noise", "yes", "train.fresh_noise: expected true or false"),
        ("train", "patch_size", 60, "train.patch_size: the unet model halves the size three times, so it must be a multiple of 8"),
        ("train", "depth", 0, "train.depth: 0 is too small"),
        ("train", "ema", 1.5, "train.ema: 1.5 must be null or a momentum in (0, 1)"),
        ("train", "warmup_steps", -1, "train.warmup_steps: -1 is too small"),
        ("train", "warmup_steps", 10**9, "train.warmup_steps: 1000000000 must be fewer than the"),
        ("train", "clip_norm", 0, "train.clip_norm: 0.0 must be null or a positive gradient norm"),
        ("train", "patch_candidates", 0, "train.patch_candidates: 0 is too small"),
        ("train", "final_patch_size", 100, "train.final_patch_size: the unet model halves the size three times, so it must be a multiple of 8"),
        ("train", "final_batch_size", 0, "train.final_batch_size: 0 is too small"),
        ("train", "scales", [1, 1.5], "train.scales: [1.0, 1.5] must be different numbers in (0, 1]"),
        ("train", "scales", "big", "train.scales: expected a number, got 'big'"),
        ("evaluate", "self_ensemble", 3, "evaluate.self_ensemble: unknown value 3; allowed: 1, 2, 4, 8"),
    ],
)
def test_invalid_values_name_the_key(section, key, value, message, monkeypatch):
    monkeypatch.chdir(ROOT)
    raw = defaults()
    raw[section][key] = value
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        parse_params(raw)


def test_levels_forms(monkeypatch):
    monkeypatch.chdir(ROOT)
    raw = defaults()
    raw["noise"]["sigma"] = [15, 25, 50]
    assert parse_params(raw).noise.levels.values == (15.0, 25.0, 50.0)
    raw["noise"]["sigma"] = {"min": 0, "max": 55}
    levels = parse_params(raw).noise.levels
    assert levels.is_range and levels.bounds == (0.0, 55.0) and levels.label(12.3) == "0-55"


def test_test_source_takes_one_folder_or_a_list(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    raw = defaults()
    raw["split"]["test_source"] = str(tmp_path)
    assert parse_params(raw).split.test_source == (str(tmp_path),)
    raw["split"]["test_source"] = [str(tmp_path), "tests"]
    assert parse_params(raw).split.test_source == (str(tmp_path), "tests")
    raw["split"]["test_source"] = [3]
    with pytest.raises(ConfigError, match=r"^split\.test_source: expected a path or a list of paths"):
        parse_params(raw)


def test_unknown_section(monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(ConfigError, match="^trian: unknown section"):
        parse_params({**defaults(), "trian": {}})


def test_stage_stops_with_one_line_error(tmp_path):
    raw = defaults()
    raw["data"]["source"] = str(ROOT / "data" / "sample.txt")
    raw["noise"]["sigma"] = -1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    result = subprocess.run([sys.executable, str(ROOT / "stages" / "prepare.py")], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: noise.sigma: -1 is out of range; allowed [0, 255]"]
    assert not (tmp_path / "data").exists()


def test_rescaled_images_need_fresh_noise(monkeypatch):
    monkeypatch.chdir(ROOT)
    raw = defaults()
    raw["train"].update(scales=[1, 0.8], fresh_noise=False)
    with pytest.raises(ConfigError, match=r"^train\.scales: rescaled training images need fresh noise"):
        parse_params(raw)
    raw["train"].update(scales=0.8, fresh_noise=True)
    assert parse_params(raw).train.scales == (0.8,)
