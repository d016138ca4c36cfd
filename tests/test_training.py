import dataclasses

import keras
import numpy as np
import pytest

from denoise import inference, optimization, training
from denoise.config import FinalPhaseConfig, Levels, ModelConfig, NoiseConfig, OptimizerConfig, SamplingConfig, TrainConfig
from denoise.noise import add_noise_to_stack
from denoise.storage import Stack

CONFIG = TrainConfig(model=ModelConfig(depth=3, width=8), epochs=3, steps_per_epoch=3, sampling=SamplingConfig(batch_size=4, patch_size=16),
                     mixed_precision="float32")
NOISE = NoiseConfig(sigma=Levels(values=(25.0,)))


def pairs(smooth_image, names, seed):
    clean = Stack([{"name": n, "sha256": f"hash-{n}"} for n in names], [smooth_image(40, 48, seed=seed + k) for k in range(len(names))])
    return clean, add_noise_to_stack(clean, NOISE)


def run(tmp_path, smooth_image, config=CONFIG):
    return training.train(config, NOISE, pairs(smooth_image, ["a", "b", "c"], 0), pairs(smooth_image, ["v"], 10),
                          model_path=tmp_path / "model.keras", live_dir=tmp_path / "live", checkpoint_dir=tmp_path / "ckpt")


@pytest.mark.parametrize("levers", [{}, {"optimizer": OptimizerConfig(warmup_steps=4)},
                                    {"final": FinalPhaseConfig(epochs=2, loss="psnr")},
                                    {"final": FinalPhaseConfig(epochs=1, patch_size=24, batch_size=2)},
                                    {"target": "neighbor2neighbor", "sampling": SamplingConfig(batch_size=4, patch_size=16, fresh_noise=False),
                                     "final": FinalPhaseConfig(epochs=2, target="refined")}])  # killed in the refined epochs
def test_interrupted_training_resumes_to_the_same_model(tmp_path, smooth_image, monkeypatch, levers):
    config = dataclasses.replace(CONFIG, **levers)
    straight = run(tmp_path / "straight", smooth_image, config)
    save = training.Checkpoint.on_epoch_end

    def killed_after_second_epoch(self, epoch, logs=None):
        save(self, epoch, logs)
        if epoch == 1:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(training.Checkpoint, "on_epoch_end", killed_after_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "resumed", smooth_image, config)
    assert not (tmp_path / "resumed" / "model.keras").exists()
    monkeypatch.setattr(training.Checkpoint, "on_epoch_end", save)
    resumed = run(tmp_path / "resumed", smooth_image, config)
    assert resumed["epochs_done"] == straight["epochs_done"] == 3
    assert resumed["best_val_psnr"] == pytest.approx(straight["best_val_psnr"], abs=0.01)
    a = inference.load_model(tmp_path / "straight" / "model.keras").get_weights()
    b = inference.load_model(tmp_path / "resumed" / "model.keras").get_weights()
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=1e-5)
    assert not list((tmp_path / "resumed" / "ckpt").glob("*.keras"))  # checkpoints removed once complete


def test_the_final_loss_takes_over_for_the_last_epochs(tmp_path, smooth_image, monkeypatch):
    seen = []

    class Recording(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(type(self.model.loss).__name__)

    recorder = Recording()
    monkeypatch.setattr(keras.Model, "fit", _with_callback(keras.Model.fit, recorder))
    state = run(tmp_path, smooth_image, dataclasses.replace(CONFIG, final=FinalPhaseConfig(epochs=1, loss="psnr")))
    assert seen == ["MeanAbsoluteError", "MeanAbsoluteError", "PSNRLoss"]
    assert len(state["history"]) == 3 and (tmp_path / "live" / "plots" / "metrics" / "eval" / "psnr.tsv").is_file()


def _with_callback(fit, extra):
    def wrapped(self, *args, callbacks=(), **kwargs):
        return fit(self, *args, callbacks=[*callbacks, extra], **kwargs)

    return wrapped


def test_a_completed_run_retrains_from_scratch(tmp_path, smooth_image):
    first = run(tmp_path, smooth_image)
    assert first["complete"] and first["precision"] == "float32"
    again = run(tmp_path, smooth_image)  # a completed run is never resumed: `dvc repro --force` retrains
    assert again["best_val_psnr"] == pytest.approx(first["best_val_psnr"], abs=1e-6)


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_warmup_rises_linearly_to_the_peak_then_follows_the_schedule(schedule):
    optimizer = OptimizerConfig(learning_rate=0.002, schedule=schedule, warmup_steps=20)
    config = dataclasses.replace(CONFIG, optimizer=optimizer, epochs=2, steps_per_epoch=60)
    rate = optimization.learning_rate(config)
    plain = optimization.learning_rate(dataclasses.replace(config, optimizer=dataclasses.replace(optimizer, warmup_steps=0), steps_per_epoch=50))  # the 100 steps after warm-up
    rises = [float(rate(step)) for step in range(20)]
    assert rises == pytest.approx([0.002 * (k + 1) / 20 for k in range(20)])
    after = [float(rate(step)) for step in range(20, 120)]
    expected = [float(plain(step)) if callable(plain) else plain for step in range(100)]
    assert after == pytest.approx(expected, rel=1e-5)
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(rate))
    assert float(restored(70)) == pytest.approx(float(rate(70)))
