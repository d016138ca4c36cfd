import dataclasses
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
    assert params.reference.model.name == "seed"


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("train.lossy", 1, "train.lossy: unknown key"),
        ("train.epochs", "ten", "train.epochs: expected an integer"),
        ("train.epochs", 0, "train.epochs: 0 is too small"),
        ("noise.sigma", -5, "noise.sigma: -5 is out of range"),
        ("noise.sigma", {"min": 30, "max": 10}, "noise.sigma: min (30) must not exceed max (10)"),
        ("split.test_fraction", 1.0, "split.test_fraction: 1.0 must be strictly between 0 and 1"),
        ("split.test_fraction", 0, "split.test_fraction: 0.0 must be strictly between 0 and 1"),
        ("train.model.name", "unet9000", "train.model.name: unknown value 'unet9000'; allowed: seed, dncnn, unet"),
        ("train.model", "unet", "train.model: expected a mapping of keys, got 'unet'"),
        ("train.loss", "huber", "train.loss: unknown value 'huber'; allowed: bce, mse, l1, psnr"),
        ("noise.type", "pink", "noise.type: unknown value 'pink'"),
        ("data.source", "/no/such/folder", "data.source: '/no/such/folder' is neither a folder of images nor a .txt list"),
        ("split.test_source", "params.yaml", "split.test_source: 'params.yaml' is neither a folder"),
        ("data.channels", 2, "data.channels: unknown value 2; allowed: 1, 3"),
        ("train.sampling.fresh_noise", "yes", "train.sampling.fresh_noise: expected true or false"),
        ("train.sampling.patch_size", 60, "train.sampling.patch_size: the unet model downsamples 8×, so it must be a multiple of 8"),
        ("train.model.depth", 0, "train.model.depth: 0 is too small"),
        ("train.optimizer.schedule", "step", "train.optimizer.schedule: unknown value 'step'; allowed: constant, cosine"),
        ("train.optimizer.warmup_steps", -1, "train.optimizer.warmup_steps: -1 is too small"),
        ("train.optimizer.warmup_steps", 10**9, "train.optimizer.warmup_steps: 1000000000 must be fewer than the"),
        ("train.final.patch_size", 100, "train.final.patch_size: the unet model downsamples 8×, so it must be a multiple of 8"),
        ("train.final.batch_size", 0, "train.final.batch_size: 0 is too small"),
        ("train.final", {"epochs": 11, "loss": "psnr"}, "train.final.epochs: 11 is more than the 10 epochs (train.epochs)"),
        ("train.final.epochs", 2, "train.final.epochs: 2 epochs of what?"),
        ("reference.model.name", "dncnn", "reference.model.depth: 1 is too small; must be >= 3"),
        ("reference.sampling.patch_size", 50, "reference.sampling.patch_size: the seed model downsamples 4×, so it must be a multiple of 4"),
        ("train.workers", 0, "train.workers: 0 is too small"),
        ("train.workers", 4, "train.workers: 4 worker processes need train.backend: jax"),
        ("evaluate.self_ensemble", 3, "evaluate.self_ensemble: unknown value 3; allowed: 1, 2, 4, 8"),
        # knobs that left the code, and flat keys of earlier versions, say so
        ("train.ema", 0.999, "train.ema: removed (it lost its experiment: docs/experiments.md); delete the key"),
        ("train.patch_candidates", 2, "train.patch_candidates: removed"),
        ("train.scales", [1, 0.8], "train.scales: removed"),
        ("train.weight_by_noise", True, "train.weight_by_noise: removed"),
        ("train.clip_norm", 0.5, "train.clip_norm: removed"),
        ("train.zero_init_residual", True, "train.zero_init_residual: removed"),
        ("noise.nr_edge", 0.5, "noise.nr_edge: removed (it lost its experiment: docs/experiments.md); delete the key"),
        ("noise.sharpen", 1, "noise.sharpen: removed"),
        ("train.width", 48, "train.width: moved to train.model.width"),
        ("reference.final_loss", "psnr", "reference.final_loss: moved to reference.final.loss"),
    ],
)
def test_invalid_values_name_the_key(key, value, message, monkeypatch):
    monkeypatch.chdir(ROOT)
    raw = defaults()
    *parents, last = key.split(".")
    section = raw
    for name in parents:
        section = section.setdefault(name, {})
    section[last] = value
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        parse_params(raw)


def test_reference_states_only_how_it_differs_from_train(monkeypatch):
    monkeypatch.chdir(ROOT)
    raw = defaults()
    params = parse_params(raw)
    train, reference = params.train, params.reference
    assert reference.model.name == "seed" and reference.loss == "bce" and reference.optimizer.schedule == "constant"
    assert reference.optimizer.learning_rate == train.optimizer.learning_rate and reference.seed == train.seed  # inherited
    assert reference.sampling.augment == train.sampling.augment and reference.sampling.fresh_noise is False  # a group merged key by key
    raw["train"]["optimizer"]["learning_rate"] = 0.0005
    raw["train"]["model"]["noise_map"] = True  # a U-Net setting does not carry over to the seed model
    changed = parse_params(raw).reference
    assert changed.optimizer.learning_rate == 0.0005 and changed.model.noise_map is False
    raw["reference"]["model"] = {"name": "unet", "width": 16}  # the same network as train: its other settings are inherited
    assert parse_params(raw).reference.model == dataclasses.replace(parse_params(raw).train.model, width=16)


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
    with pytest.raises(ConfigError, match=r"^split\.test_source: expected a string or a list of strings"):
        parse_params(raw)
    raw["split"]["test_levels"] = [15, 25]
    raw["split"]["test_source"] = None
    with pytest.raises(ConfigError, match=r"^split\.test_levels: sets the noise of the split\.test_source folders, and there are none"):
        parse_params(raw)
    raw["split"]["test_source"] = str(tmp_path)
    assert parse_params(raw).split.test_levels.values == (15.0, 25.0)


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


@pytest.mark.parametrize("formats, message", [(["onnx", "pt"], r"export\.formats: unknown value 'pt'; allowed: onnx, openvino, litert, saved_model"),
                                              (["onnx", "onnx"], r"export\.formats: \['onnx', 'onnx'\] lists a format twice")])
def test_export_formats_are_checked(formats, message):
    with pytest.raises(ConfigError, match=message):
        parse_params({**defaults(), "export": {"formats": formats}})
    assert parse_params({**defaults(), "export": {"formats": "litert"}}).export.formats == ("litert",)
