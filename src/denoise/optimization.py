"""The optimizer and its learning-rate schedule, from train.optimizer. Written in Keras alone, so that
it builds the same optimizer under any Keras backend."""

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
    """train.optimizer.schedule over the steps after warmup_steps, during which the rate rises linearly."""
    settings = config.optimizer
    total = config.total_steps - settings.warmup_steps
    schedule = settings.learning_rate
    if settings.schedule == "cosine":
        schedule = keras.optimizers.schedules.CosineDecay(settings.learning_rate, decay_steps=total, alpha=0.01)
    return Warmup(settings.warmup_steps, settings.learning_rate, schedule) if settings.warmup_steps else schedule


def adam(config: TrainConfig) -> keras.optimizers.Adam:
    return keras.optimizers.Adam(learning_rate(config))
