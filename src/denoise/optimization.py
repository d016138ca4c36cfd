"""The optimizer and its learning-rate schedule, from train.* params. Written in Keras alone, so that
the pipeline (TensorFlow) and the GPU run in bench/gpu_train.py (JAX) build the same optimizer."""

from __future__ import annotations

import keras

from .config import TrainConfig


@keras.saving.register_keras_serializable(package="denoise")
class Warmup(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 over `steps`, then `after` (counted from the end of the warm-up)."""

    def __init__(self, steps: int, peak: float, after):
        self.steps, self.peak, self.after = steps, peak, after

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        rest = self.after(step - self.steps) if callable(self.after) else self.after
        return keras.ops.where(step < self.steps, self.peak * (step + 1) / self.steps, rest)

    def get_config(self):
        after = keras.optimizers.schedules.serialize(self.after) if callable(self.after) else self.after
        return {"steps": self.steps, "peak": self.peak, "after": after}

    @classmethod
    def from_config(cls, config):
        after = config["after"]
        return cls(config["steps"], config["peak"], keras.optimizers.schedules.deserialize(after) if isinstance(after, dict) else after)


def learning_rate(config: TrainConfig):
    """train.schedule over the steps after train.warmup_steps, during which the rate rises linearly."""
    total = config.total_steps - config.warmup_steps
    if config.schedule == "cosine":
        schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=total, alpha=0.01)
    elif config.schedule == "step":
        bounds = [int(total * 0.5), int(total * 0.75)]
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay(bounds, [config.learning_rate * f for f in (1.0, 0.1, 0.01)])
    else:
        schedule = config.learning_rate
    return Warmup(config.warmup_steps, config.learning_rate, schedule) if config.warmup_steps else schedule


def adam(config: TrainConfig) -> keras.optimizers.Adam:
    """Adam on train.schedule, with train.clip_norm and train.ema."""
    return keras.optimizers.Adam(learning_rate(config), global_clipnorm=config.clip_norm, use_ema=config.ema is not None, ema_momentum=config.ema or 0.99)
