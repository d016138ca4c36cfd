"""Training: the loss that changes for the last epochs, validation PSNR on full images, best-model selection, DVCLive
logging, and resumable checkpoints (an interrupted `dvc repro` continues where it stopped)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from dvclive import Live
from dvclive.keras import DVCLiveCallback

from . import inference, metrics, models
from .config import NoiseConfig, TrainConfig
from .losses import get_loss
from .optimization import adam
from .patches import patch_batches
from .storage import Stack, atomic_path, read_json, write_json


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def set_precision(choice: str) -> str:
    """Apply train.mixed_precision; `auto` picks mixed_bfloat16 on CPUs with native bf16 (AMX/AVX-512)."""
    policy = choice if choice != "auto" else ("mixed_bfloat16" if cpu_has_bf16() or tf.config.list_physical_devices("GPU") else "float32")
    keras.mixed_precision.set_global_policy(policy)
    return policy


@keras.saving.register_keras_serializable(package="denoise")
class PhasedLoss(keras.losses.Loss):
    """`first` until a callback (FinalLoss) sets `use_final`, then `final`."""

    def __init__(self, first: str, final: str, name="phased_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.first_name, self.final_name = first, final
        self.first, self.final = get_loss(first), get_loss(final)
        self.use_final = tf.Variable(False, trainable=False, name="use_final_loss")

    def __call__(self, y_true, y_pred, sample_weight=None):
        return tf.cond(self.use_final, lambda: self.final(y_true, y_pred, sample_weight), lambda: self.first(y_true, y_pred, sample_weight))

    def get_config(self):
        return {"name": self.name, "first": self.first_name, "final": self.final_name}


class ValidationPSNR(keras.callbacks.Callback):
    """Adds `val_psnr` (8-bit PSNR over full validation images) to the epoch logs."""

    def __init__(self, clean: Stack, noisy: Stack):
        super().__init__()
        self.pairs = [(clean.by_name()[e["name"]], image) for e, image in zip(noisy.entries, noisy.images)]

    def on_epoch_end(self, epoch, logs=None):
        scores = [metrics.psnr(c, inference.predict(self.model, n)) for c, n in self.pairs]
        logs["val_psnr"] = float(np.mean(scores))


class FinalLoss(keras.callbacks.Callback):
    """Turns a PhasedLoss to its final loss for the last train.final.epochs; set from the epoch number,
    so a resumed run is in the right phase."""

    def __init__(self, config: TrainConfig):
        super().__init__()
        self.first_final_epoch = config.epochs - config.final.epochs

    def on_epoch_begin(self, epoch, logs=None):
        loss = self.model.loss
        if isinstance(loss, PhasedLoss):
            loss.use_final.assign(epoch >= self.first_final_epoch)


class Checkpoint(keras.callbacks.Callback):
    """After each epoch: save the last model (with optimizer state) and the best by val_psnr."""

    def __init__(self, folder: Path, fingerprint: str, state: dict):
        super().__init__()
        self.folder, self.fingerprint, self.state = folder, fingerprint, state
        self.started, self.earlier_seconds = time.perf_counter(), state.get("train_seconds", 0.0)

    def on_epoch_end(self, epoch, logs=None):
        if logs["val_psnr"] > self.state.get("best_val_psnr", -np.inf):
            self._save(self.model, self.folder / "best.keras")
            self.state.update(best_val_psnr=logs["val_psnr"], best_epoch=epoch + 1)
        self._save(self.model, self.folder / "last.keras")
        seconds = round(self.earlier_seconds + time.perf_counter() - self.started, 1)  # resumed runs add up
        self.state.update(fingerprint=self.fingerprint, epochs_done=epoch + 1, complete=False, train_seconds=seconds)
        write_json(self.folder / "state.json", self.state)

    @staticmethod
    def _save(model: keras.Model, path: Path):
        with atomic_path(path) as tmp:
            model.save(tmp)


def fingerprint(config: TrainConfig, noise: NoiseConfig, train_clean: Stack, precision: str) -> str:
    key = json.dumps([dataclasses.asdict(config), dataclasses.asdict(noise), train_clean.entries, precision], sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()


def train(config: TrainConfig, noise: NoiseConfig, train_pairs: tuple[Stack, Stack], val_pairs: tuple[Stack, Stack], model_path: Path, live_dir: Path, checkpoint_dir: Path) -> dict:
    """Train and write the best model (by validation PSNR) to model_path; returns the final state."""
    precision = set_precision(config.mixed_precision)
    keras.utils.set_random_seed(config.seed)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    run_fingerprint = fingerprint(config, noise, train_pairs[0], precision)
    state_file = checkpoint_dir / "state.json"
    state = read_json(state_file) if state_file.exists() else {}
    resume = state.get("fingerprint") == run_fingerprint and not state.get("complete") and (checkpoint_dir / "last.keras").exists()
    if resume:
        model = keras.saving.load_model(checkpoint_dir / "last.keras", safe_mode=True)
        start = state["epochs_done"]
        print(f"resuming from the checkpoint after epoch {start} in {checkpoint_dir}")
    else:
        state, start = {}, 0
        if live_dir.exists():
            shutil.rmtree(live_dir)
        model = models.build_model(config.model, channels=train_pairs[0].images[0].shape[-1])
        final = config.final.loss if config.final.epochs else None
        model.compile(optimizer=adam(config), loss=PhasedLoss(config.loss, final) if final else get_loss(config.loss))
    data = patch_batches(*train_pairs, config, noise, start * config.steps_per_epoch, (config.epochs - start) * config.steps_per_epoch)
    live = Live(str(live_dir), resume=resume, dvcyaml=None, save_dvc_exp=False, report=None)
    callbacks = [FinalLoss(config), ValidationPSNR(*val_pairs), Checkpoint(checkpoint_dir, run_fingerprint, state), DVCLiveCallback(live=live)]
    if start < config.epochs:
        model.fit(data, epochs=config.epochs, initial_epoch=start, steps_per_epoch=config.steps_per_epoch, shuffle=False, callbacks=callbacks, verbose=1 if sys.stdout.isatty() else 2)
    live.end()
    with atomic_path(model_path) as tmp:
        shutil.copyfile(checkpoint_dir / "best.keras", tmp)
    state.update(complete=True, precision=precision)
    for name in ("best.keras", "last.keras"):
        (checkpoint_dir / name).unlink(missing_ok=True)
    write_json(state_file, state)
    return state

