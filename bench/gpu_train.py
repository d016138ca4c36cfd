"""Train the GPU preset (bench/preset-gpu.yaml) on a machine that has JAX but no TensorFlow, as the
H200 lent through the device tool: the pipeline's own network (models.build_model), losses
(losses.py), optimizer and schedule (optimization.adam), under Keras's JAX backend. Only the batches
are written again here, in jax.random on the accelerator, because patches.py is tf.data: the same
sampling (a random training image and patch, one of the 8 flips and rotations, a σ per patch drawn
from train.sampling.fresh_levels, fresh Gaussian noise; train.final.loss for the last train.final.epochs),
seeded from train.seed and the step number, but not the same random numbers.

With --minutes, the run's length is chosen once from the measured step time (a throwaway timing
run on the first batches) so that training fits the device's time limit; the epochs it chose are in
run.json, and `--epochs N` repeats that run exactly. The model comes back as model.keras split into
parts of 15 MiB (the device returns files of at most 16 MiB), with run.json (steps, seconds, losses);
`bench/run_bench.py --trained DIR` evaluates it through the pipeline on this machine's benchmark data.

    KERAS_BACKEND=jax python bench/gpu_train.py --train bench/work/data/split/train/clean --out OUT --minutes 6
"""

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from denoise import inference, losses, models, optimization  # noqa: E402
from denoise.config import TrainConfig, parse_section  # noqa: E402
from denoise.errors import ConfigError, exit_on_error  # noqa: E402
from denoise.images import padded_batch  # noqa: E402
from denoise.storage import load_stack  # noqa: E402

CHUNK = 100  # steps per compiled call: one dispatch per chunk instead of per step
PART_BYTES = 15 * 2**20


def train_config(preset: Path, epochs: int | None) -> TrainConfig:
    config = parse_section(TrainConfig, yaml.safe_load(preset.read_text())["train"], "train")
    unsupported = {"fresh_noise": not config.sampling.fresh_noise, "fresh_levels": config.sampling.fresh_levels is None}
    for key, present in unsupported.items():
        if present:
            raise ConfigError(f"train.sampling.{key}: not supported by {Path(__file__).name} (fresh Gaussian noise over "
                              "train.sampling.fresh_levels only)")
    if config.steps_per_epoch % CHUNK:
        raise ConfigError(f"train.steps_per_epoch: {config.steps_per_epoch} must be a multiple of {CHUNK} here")
    return with_epochs(config, epochs) if epochs else config


def with_epochs(config: TrainConfig, epochs: int) -> TrainConfig:
    """The same run stretched to `epochs`, the final phase keeping its share."""
    final = round(config.final.epochs * epochs / config.epochs)
    return dataclasses.replace(config, epochs=epochs, final=dataclasses.replace(config.final, epochs=final))


def train_yaml(config: TrainConfig) -> dict:
    """The train section as params.yaml writes it."""
    raw = dataclasses.asdict(config)
    raw["sampling"]["fresh_levels"] = config.sampling.fresh_levels.to_yaml()
    return raw


def batch_maker(images: np.ndarray, sizes: np.ndarray, config: TrainConfig):
    """batch(step, size, count) -> (noisy, clean): the sampling of patches.py in jax.random."""
    images, levels = jnp.asarray(images), config.sampling.fresh_levels
    base = jax.random.key(config.seed)

    def batch(step, size: int, count: int):
        keys = jax.random.split(jax.random.fold_in(base, step), 5)
        eligible = jnp.asarray(np.flatnonzero(sizes.min(axis=1) >= size))
        pick = jax.random.choice(keys[0], eligible, (count,))
        room = jnp.asarray(sizes)[pick] - size + 1
        corner = (jax.random.uniform(keys[1], (count, 2)) * room).astype(jnp.int32)
        cut = lambda i, c: jax.lax.dynamic_slice(images[i], (c[0], c[1], 0), (size, size, images.shape[-1]))  # noqa: E731
        clean = jax.vmap(cut)(pick, corner)
        flips = jax.random.bernoulli(keys[2], 0.5, (3, count))[:, :, None, None, None]
        clean = jnp.where(flips[0], clean[:, ::-1], clean)
        clean = jnp.where(flips[1], clean[:, :, ::-1], clean)
        clean = jnp.where(flips[2], jnp.swapaxes(clean, 1, 2), clean)
        if levels.is_range:
            sigma = jax.random.uniform(keys[3], (count, 1, 1, 1), minval=levels.low, maxval=levels.high)
        else:
            sigma = jax.random.choice(keys[3], jnp.asarray(levels.values, jnp.float32), (count, 1, 1, 1))
        return clean + jax.random.normal(keys[4], clean.shape) * sigma / 255.0, clean

    return batch


def trainer(config: TrainConfig, images: np.ndarray, sizes: np.ndarray):
    """(model, initial state, run) where run(first_step, state) does CHUNK steps, compiled once."""
    model = models.build_model(config.model, channels=images.shape[-1])
    optimizer = optimization.adam(config)
    optimizer.build(model.trainable_variables)
    first_loss, final_loss = losses.get_loss(config.loss), losses.get_loss(config.final.loss or config.loss)
    first_final = config.first_final_step
    batch = batch_maker(images, sizes, config)
    if config.final.epochs and config.final_sampling != config.sampling:
        raise ConfigError("train.final.patch_size/batch_size: not supported by gpu_train.py (one compiled step for both phases)")

    def loss_of(trainable, non_trainable, step):
        noisy, clean = batch(step, config.sampling.patch_size, config.sampling.batch_size)
        estimate, non_trainable = model.stateless_call(trainable, non_trainable, noisy, training=True)
        loss = jax.lax.cond(step >= first_final, final_loss, first_loss, clean, estimate)
        return loss, non_trainable

    gradient = jax.value_and_grad(loss_of, has_aux=True)

    def one_step(step, state):
        trainable, non_trainable, optimizer_state, total = state
        (loss, non_trainable), grads = gradient(trainable, non_trainable, step)
        trainable, optimizer_state = optimizer.stateless_apply(optimizer_state, grads, trainable)
        return trainable, non_trainable, optimizer_state, total + loss

    @jax.jit
    def run(first, state):
        *weights, _ = state
        return jax.lax.fori_loop(first, first + CHUNK, one_step, (*weights, jnp.float32(0)))

    state = ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables],
             [v.value for v in optimizer.variables], jnp.float32(0))
    return model, state, run


def seconds_per_step(config: TrainConfig, images, sizes) -> float:
    """Wall seconds a step, timed on a throwaway run after compiling."""
    _, state, run = trainer(config, images, sizes)
    jax.block_until_ready(run(0, state))
    started = time.perf_counter()
    jax.block_until_ready(run(CHUNK, state))
    jax.block_until_ready(run(2 * CHUNK, state))
    return (time.perf_counter() - started) / (2 * CHUNK)


def save_parts(model: keras.Model, out: Path) -> list[str]:
    path = out / "model.keras"
    model.save(path)
    data, names = path.read_bytes(), []
    for k in range(math.ceil(len(data) / PART_BYTES)):
        names.append(f"model.keras.part{k}")
        (out / names[-1]).write_bytes(data[k * PART_BYTES:(k + 1) * PART_BYTES])
    path.unlink()
    return names


@exit_on_error
def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="the split stage's clean training stack (data/split/train/clean)")
    parser.add_argument("--preset", default=str(Path(__file__).with_name("preset-gpu.yaml")))
    parser.add_argument("--out", required=True)
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help="override train.epochs (the final phase keeps its share)")
    length.add_argument("--minutes", type=float, help="choose the epochs that fit this many minutes of training")
    parser.add_argument("--precision", choices=("auto", "float32", "mixed_bfloat16"), default="auto", help="auto: bf16 on a GPU")
    args = parser.parse_args()
    config = train_config(Path(args.preset), args.epochs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = jax.devices()[0]
    print(f"{device.platform}: {device.device_kind}; jax {jax.__version__}, keras {keras.__version__}", flush=True)
    precision = args.precision if args.precision != "auto" else ("mixed_bfloat16" if device.platform == "gpu" else "float32")
    keras.mixed_precision.set_global_policy(precision)
    stack = load_stack(args.train)
    sizes = np.array([image.shape[:2] for image in stack.images], np.int32)
    images = padded_batch(stack.images)
    if args.minutes:
        step_seconds = seconds_per_step(config, images, sizes)
        config = with_epochs(config, max(1, int(args.minutes * 60 / step_seconds / config.steps_per_epoch)))
        print(f"{step_seconds * 1000:.1f} ms a step: {config.epochs} epochs of {config.steps_per_epoch} steps fit {args.minutes} min", flush=True)
    keras.utils.set_random_seed(config.seed)  # the initial weights: after the timing run, so --epochs repeats a --minutes run
    model, state, run = trainer(config, images, sizes)
    log, started = [], time.perf_counter()
    for first in range(0, config.total_steps, CHUNK):
        state = run(first, state)
        if (first + CHUNK) % config.steps_per_epoch == 0:
            loss = float(state[3]) / CHUNK
            log.append({"step": first + CHUNK, "loss": loss, "seconds": round(time.perf_counter() - started, 1)})
            print(f"epoch {(first + CHUNK) // config.steps_per_epoch}/{config.epochs}: loss {loss:.5f} ({log[-1]['seconds']:.0f} s)", flush=True)
    train_seconds = time.perf_counter() - started  # includes compiling the step, as the CPU pipeline's figure does
    for variable, value in zip(model.trainable_variables, state[0]):
        variable.assign(value)
    for variable, value in zip(model.non_trainable_variables, state[1]):
        variable.assign(value)
    probe = np.random.default_rng(0).random((321, 481, images.shape[-1])).astype(np.float32)
    inference.predict(model, probe)
    times = []
    for _ in range(5):
        begin = time.perf_counter()
        inference.predict(model, probe)
        times.append(time.perf_counter() - begin)
    run_info = {"device": f"{device.platform}: {device.device_kind}", "train": train_yaml(config),
                "train_seconds": round(train_seconds, 1), "steps": config.total_steps, "parameters": model.count_params(), "precision": precision,
                "seconds_per_481x321_image": round(float(np.median(times)), 4), "log": log,
                "parts": save_parts(model, out), "jax": jax.__version__, "keras": keras.__version__}
    (out / "run.json").write_text(json.dumps(run_info, indent=1) + "\n")
    print(f"trained {config.total_steps} steps in {train_seconds / 60:.1f} min; {run_info['seconds_per_481x321_image']} s per 481×321 image", flush=True)


if __name__ == "__main__":
    main()
