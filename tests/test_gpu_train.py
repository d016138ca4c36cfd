"""bench/gpu_train.py, the GPU preset under Keras's JAX backend (for a GPU machine without TensorFlow), run
here on CPU JAX with tiny settings: it writes a model that the pipeline loads, and repeats itself."""

import json
import os
import subprocess
import sys

import numpy as np
import yaml

from denoise import inference
from denoise.config import deep_merge
from denoise.storage import Stack, save_stack
from tiny_repo import ROOT


def train_on_jax(stack, preset, out):
    command = [sys.executable, str(ROOT / "bench" / "gpu_train.py"), "--train", str(stack), "--preset", str(preset), "--out", str(out)]
    result = subprocess.run(command, env={**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    run = json.loads((out / "run.json").read_text())
    model_file = out / "model.keras"
    model_file.write_bytes(b"".join((out / part).read_bytes() for part in run["parts"]))
    return run, inference.load_model(model_file)


def test_gpu_train_writes_a_model_the_pipeline_loads_and_repeats_itself(tmp_path, smooth_image):
    stack = Stack()
    for k in range(4):
        stack.append({"name": f"{k}.png"}, smooth_image(40 + 8 * k, 48, seed=k))
    save_stack(tmp_path / "train", stack, np.uint16)
    preset = yaml.safe_load((ROOT / "bench" / "preset-gpu.yaml").read_text())
    preset["train"] = deep_merge(preset["train"], {"model": {"depth": 1, "width": 8, "full_width": 4}, "epochs": 3, "final": {"epochs": 1},
                                                   "steps_per_epoch": 100, "sampling": {"batch_size": 4, "patch_size": 32},
                                                   "optimizer": {"warmup_steps": 10, "learning_rate": 0.003}})
    (tmp_path / "preset.yaml").write_text(yaml.safe_dump(preset))
    (run, model), (_, again) = (train_on_jax(tmp_path / "train", tmp_path / "preset.yaml", tmp_path / f"out{k}") for k in range(2))
    assert run["steps"] == 300 and [entry["step"] for entry in run["log"]] == [100, 200, 300]
    assert run["log"][1]["loss"] < run["log"][0]["loss"]  # L1 falls over the first two epochs (the third is on the PSNR loss)
    for weight, repeated in zip(model.weights, again.weights, strict=True):
        np.testing.assert_array_equal(weight.numpy(), repeated.numpy())
    clean = smooth_image(37, 45, seed=9)
    noisy = clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape).astype(np.float32)
    denoised = inference.predict(model, noisy)
    assert denoised.shape == clean.shape and np.abs(denoised - clean).mean() < np.abs(noisy - clean).mean()


def test_gpu_train_refuses_what_it_does_not_do_in_one_line(tmp_path):
    preset = yaml.safe_load((ROOT / "bench" / "preset-gpu.yaml").read_text())
    preset["train"]["sampling"]["fresh_noise"] = False  # stored noisy pairs: tf.data only
    (tmp_path / "preset.yaml").write_text(yaml.safe_dump(preset))
    command = [sys.executable, str(ROOT / "bench" / "gpu_train.py"), "--train", str(tmp_path), "--preset", str(tmp_path / "preset.yaml"),
               "--out", str(tmp_path / "out")]
    result = subprocess.run(command, env={**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}, capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.strip().startswith("error: train.sampling.fresh_noise:") and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
