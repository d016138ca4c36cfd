"""The one training loop, under any Keras backend (TensorFlow or JAX): Keras's fit() on NumPy batches
(sampling.py), a loss that can change for the last epochs, validation PSNR on full images, best-model
selection, DVCLive logging, and resumable checkpoints (an interrupted `dvc repro` continues where it
stopped, to the same model)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from . import inference, metrics, models, targets
from .config import NoiseConfig, TrainConfig
from .errors import ConfigError
from .losses import get_loss
from .optimization import adam
from .sampling import Batches, PatchSampler, batches
from .storage import Stack, atomic_path, read_json, save_keras, write_json


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def accelerated() -> bool:
    return any(not device.startswith("cpu") for device in keras.distribution.list_devices())


def processes() -> tuple[int, int]:
    """(this process's index, the number of processes) of a multi-host run; (0, 1) otherwise."""
    if keras.backend.backend() != "jax":
        return 0, 1
    import jax

    return jax.process_index(), jax.process_count()


@contextlib.contextmanager
def distributed(config: TrainConfig, key: str = "train"):
    """Inside, train.devices devices share each batch (Keras's DataParallel, JAX), over every process of a
    multi-host run that KERAS_DISTRIBUTION_JOB_ADDRESSES, _NUM_PROCESSES and _PROCESS_ID describe
    (keras.distribution.initialize). Yields the number of devices. The batch sizes in params are global."""
    if keras.backend.backend() != "jax":
        yield 1
        return
    if int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1")) > 1 and not _initialized():
        import jax

        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU devices across processes (GPUs use NCCL)
        keras.distribution.initialize()
    available = keras.distribution.list_devices()
    count = len(available) if config.devices == "auto" else config.devices
    if count > len(available):
        raise ConfigError(f"{key}.devices: {count}, but {len(available)} device(s) here: {', '.join(available)}")
    for name, size in (("sampling.batch_size", config.sampling.batch_size), ("final.batch_size", config.final_sampling.batch_size)):
        if size % count:
            raise ConfigError(f"{key}.{name}: {size} is not a multiple of the {count} devices that share it ({key}.devices)")
    if count == 1:
        yield 1
        return
    # each process feeds its own share of every batch (sampling.Batches), so Keras need not shard the data
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=available[:count], auto_shard_dataset=False))
    try:
        yield count
    finally:
        keras.distribution.set_distribution(None)


def _initialized() -> bool:
    import jax.distributed

    return jax.distributed.is_initialized()


def set_precision(choice: str) -> str:
    """Apply train.mixed_precision. `auto` picks mixed_bfloat16 where it pays: on an accelerator, and under
    TensorFlow on CPUs with native bf16 (AVX-512/AMX: oneDNN's kernels, about 1.5× faster a step here);
    XLA's CPU kernels gain nothing from it (measured: docs/training.md), so JAX on a CPU trains in float32."""
    bf16 = accelerated() or (keras.backend.backend() == "tensorflow" and cpu_has_bf16())
    policy = choice if choice != "auto" else ("mixed_bfloat16" if bf16 else "float32")
    keras.mixed_precision.set_global_policy(policy)
    return policy


class ValidationPSNR(keras.callbacks.Callback):
    """Adds `val_psnr` (8-bit PSNR over full validation images) to the epoch logs. For a self-supervised
    network (`network` given: fit() trains a wrapper around it), no clean image is read: `val_psnr` is then
    the neighbour PSNR of the noisy validation images (targets.neighbour_psnr)."""

    def __init__(self, clean: Stack, noisy: Stack, network: keras.Model | None = None):
        super().__init__()
        self.network = network
        if network is None:
            self.pairs = [(clean.by_name()[e["name"]], image) for e, image in zip(noisy.entries, noisy.images)]
        else:
            self.noisy = list(noisy.images)

    def on_epoch_end(self, epoch, logs=None):
        if self.network is not None:
            logs["val_psnr"] = targets.neighbour_psnr(self.network, self.noisy)
            return
        # tiles of 512² bound the memory of large validation images (smaller ones are one pass, as before)
        logs["val_psnr"] = float(np.mean([metrics.psnr(c, inference.predict_tiled(self.model, n)) for c, n in self.pairs]))


TIME_FILE = "time.json"  # beside state.json; .dvcignore keeps it out of DVC's hash of the checkpoint folder


def train_seconds(checkpoint_dir: str | Path) -> float:
    """The training time of the run whose checkpoint folder this is (resumed runs add up). It is kept apart from
    state.json, in time.json, so that a rerun that trains the same weights leaves every hash in dvc.lock as it was;
    checkpoints written before that split carry it in state.json."""
    folder = Path(checkpoint_dir)
    if (folder / TIME_FILE).is_file():
        return float(read_json(folder / TIME_FILE)["train_seconds"])
    return float(read_json(folder / "state.json").get("train_seconds", 0.0)) if (folder / "state.json").is_file() else 0.0


class Checkpoint(keras.callbacks.Callback):
    """After each epoch: save the last model (with optimizer state) and the best by val_psnr, the state with
    the history of every epoch, the training time so far (time.json), and the DVCLive files made from that history."""

    def __init__(self, folder: Path, live_dir: Path, fingerprint: str, state: dict, network: keras.Model | None = None):
        super().__init__()
        self.folder, self.live_dir, self.fingerprint, self.state = folder, live_dir, fingerprint, state
        self.network = network  # what best.keras holds when fit() trains a wrapper around it
        self.started, self.earlier_seconds = time.perf_counter(), train_seconds(folder) if state else 0.0

    def on_epoch_end(self, epoch, logs=None):
        if logs["val_psnr"] > self.state.get("best_val_psnr", -np.inf):
            self._save(self.folder / "best.keras", self.network)
            self.state.update(best_val_psnr=logs["val_psnr"], best_epoch=epoch + 1)
        self._save(self.folder / "last.keras")
        if processes()[0] != 0:  # one process of a multi-host run writes
            return
        seconds = round(self.earlier_seconds + time.perf_counter() - self.started, 1)  # resumed runs add up
        history = self.state.get("history", [])[:epoch] + [{"loss": float(logs["loss"]), "val_psnr": float(logs["val_psnr"])}]
        self.state.pop("train_seconds", None)
        self.state.update(fingerprint=self.fingerprint, epochs_done=epoch + 1, complete=False, history=history)
        write_json(self.folder / "state.json", self.state)
        write_json(self.folder / TIME_FILE, {"train_seconds": seconds})
        write_live(self.live_dir, history)

    def _save(self, path: Path, model: keras.Model | None = None):
        """Save the model (default: the one fit() trains) to `path`; in a multi-host run every process takes part
        in gathering the weights, and all but the first write to a scratch file that is thrown away."""
        model = model or self.model
        if processes()[0] != 0:
            with tempfile.TemporaryDirectory() as scratch:
                model.save(Path(scratch) / path.name)
            return
        save_keras(model, path)


def write_live(live_dir: Path, history: list[dict]) -> bool:
    """The DVCLive files (metrics.json and the per-epoch plots) of a run's history, written anew. False where
    DVCLive is not installed (a bare accelerator machine): `stages/train.py SECTION --log-only` writes them later."""
    try:
        from dvclive import Live
    except ImportError:
        return False
    if live_dir.exists():
        shutil.rmtree(live_dir)
    live = Live(str(live_dir), dvcyaml=None, save_dvc_exp=False, report=None)
    for logs in history:
        live.log_metric("train/loss", logs["loss"])
        live.log_metric("eval/psnr", logs["val_psnr"])
        live.next_step()
    live.end()
    return True


def refining_sampler(config: TrainConfig, noise: NoiseConfig, refined: Stack) -> PatchSampler:
    """The supervised sampler of train.final.target refined: the refined images as clean ones, under fresh noise
    of the noise model (train.sampling.fresh_levels, or the noise section's levels), with train.final's sizes."""
    sampling = dataclasses.replace(config.final_sampling, fresh_noise=True)
    supervised = dataclasses.replace(config, target="clean", sampling=sampling, final=dataclasses.replace(config.final, epochs=0, target=None))
    return PatchSampler(refined, refined, supervised, noise)  # (noise.type none: parse_params refuses)


def fingerprint(config: TrainConfig, noise: NoiseConfig, train_clean: Stack, precision: str) -> str:
    key = json.dumps([dataclasses.asdict(config), dataclasses.asdict(noise), train_clean.entries, precision, keras.backend.backend()],
                     sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()


def train(config: TrainConfig, noise: NoiseConfig, train_pairs: tuple[Stack, Stack], val_pairs: tuple[Stack, Stack], model_path: Path, live_dir: Path, checkpoint_dir: Path,
          extra_callbacks: list = ()) -> dict:
    """Train and write the best model (by validation PSNR) to model_path; returns the final state.

    The last train.final.epochs run as a second fit() on the final loss (the model recompiled with the same
    optimizer, whose state carries over) and the final patch and batch size. `extra_callbacks` run after
    validation each epoch; one that stops training (a pruned tuning trial) ends the run there."""
    with distributed(config) as devices:
        precision = set_precision(config.mixed_precision)
        state = _train(config, noise, train_pairs, val_pairs, model_path, live_dir, checkpoint_dir, precision, list(extra_callbacks))
    return {**state, "devices": devices, "train_seconds": train_seconds(checkpoint_dir)}


def _train(config, noise, train_pairs, val_pairs, model_path: Path, live_dir: Path, checkpoint_dir: Path, precision: str, extra: list) -> dict:
    keras.utils.set_random_seed(config.seed)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    run_fingerprint = fingerprint(config, noise, train_pairs[0], precision)
    state_file = checkpoint_dir / "state.json"
    state = read_json(state_file) if state_file.exists() else {}
    resume = state.get("fingerprint") == run_fingerprint and not state.get("complete") and (checkpoint_dir / "last.keras").exists()
    if resume:
        fitted = keras.saving.load_model(checkpoint_dir / "last.keras", safe_mode=True)
        optimizer, start = fitted.optimizer, state["epochs_done"]
        model = targets.network_of(fitted)  # the network alone where the last epoch trained on refined targets
        fitted = targets.training_model(model) if config.self_supervised and fitted is model else fitted
        print(f"resuming from the checkpoint after epoch {start} in {checkpoint_dir}")
    else:
        state, start = {}, 0
        model = models.build_model(config.model, channels=train_pairs[1].shape(0)[-1])
        fitted = targets.training_model(model) if config.self_supervised else model  # what fit() trains
        optimizer = adam(config)
    sampler = PatchSampler(*train_pairs, config, noise)
    network = model if config.self_supervised else None
    callbacks = [ValidationPSNR(*val_pairs, network), Checkpoint(checkpoint_dir, live_dir, run_fingerprint, state, network), *extra]
    first_final = config.epochs - config.final.epochs
    final_loss = get_loss(config.final.loss or config.loss)
    if config.refines:  # one phase per epoch: the refined targets are made anew from the network before each
        phases = [(fitted, targets.Neighbor2NeighborLoss(), sampler, start, first_final)]
        phases += [(model, final_loss, None, epoch, epoch + 1) for epoch in range(max(start, first_final), config.epochs)]
    else:
        loss = targets.Neighbor2NeighborLoss() if config.self_supervised else get_loss(config.loss)
        phases = [(fitted, loss, sampler, start, first_final), (fitted, final_loss, sampler, max(start, first_final), config.epochs)]
    for trained, loss, phase_sampler, begin, end in phases:
        if end <= begin:
            continue
        phase_sampler = phase_sampler or refining_sampler(config, noise, targets.refined(model, train_pairs[1]))
        trained.compile(optimizer=optimizer, loss=loss)
        data = batches(phase_sampler, begin * config.steps_per_epoch, (end - begin) * config.steps_per_epoch, part=processes(), workers=config.workers)
        try:
            trained.fit(data, epochs=end, initial_epoch=begin, steps_per_epoch=config.steps_per_epoch, shuffle=False, callbacks=callbacks,
                        verbose=1 if sys.stdout.isatty() else 2)
        finally:
            if isinstance(data, Batches):
                data.close()
        if trained.stop_training:
            break
    state.update(complete=True, precision=precision, backend=keras.backend.backend())
    if processes()[0] == 0:
        with atomic_path(model_path) as tmp:
            shutil.copyfile(checkpoint_dir / "best.keras", tmp)
        for name in ("best.keras", "last.keras"):
            (checkpoint_dir / name).unlink(missing_ok=True)
        write_json(state_file, state)
    return state
