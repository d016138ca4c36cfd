"""Stage train: fit the model of one params section (`train`, or `reference` for the original design) on
patches of the training images; keep the best by validation PSNR. The section's `backend` chooses Keras's
backend (TensorFlow or JAX), so the same script trains here and on an accelerator machine that has JAX alone.

    python stages/train.py [train|reference] [--log-only]

--log-only writes the DVCLive files from a finished run's checkpoints/SECTION/state.json, for a run made where
DVCLive is not installed (docs/accelerators.md)."""

import argparse
import os
import sys
from pathlib import Path

from denoise.config import load_params
from denoise.errors import ConfigError, DenoiseError, exit_on_error


def use_backend(name: str, key: str) -> None:
    """Make Keras start on the backend that the params name; refuse a KERAS_BACKEND that says otherwise."""
    chosen = os.environ.get("KERAS_BACKEND")
    if chosen and chosen != name:
        raise ConfigError(f"{key}: {name}, but KERAS_BACKEND={chosen}; unset KERAS_BACKEND or set {key}: {chosen}")
    os.environ["KERAS_BACKEND"] = name
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@exit_on_error
def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("section", nargs="?", default="train", choices=("train", "reference"))
    parser.add_argument("--log-only", action="store_true")
    args = parser.parse_args()
    section = args.section
    params = load_params()
    config = getattr(params, section)
    use_backend(config.backend, f"{section}.backend")
    from denoise import training, trials
    from denoise.datasets import load_split
    from denoise.storage import read_json

    live_dir, checkpoint_dir = Path(f"dvclive/{section}"), Path(f"checkpoints/{section}")
    if args.log_only:
        if not training.write_live(live_dir, read_json(checkpoint_dir / "state.json")["history"]):
            raise DenoiseError("--log-only: DVCLive is not installed here")
        return
    state = training.train(
        config, params.noise, load_split("data/split", "train"), load_split("data/split", "val"),
        model_path=Path("models/model.keras" if section == "train" else f"models/{section}.keras"), live_dir=live_dir, checkpoint_dir=checkpoint_dir,
        extra_callbacks=trials.callbacks() if section == "train" else [],  # make tune's pruning
    )
    print(f"{section}: best val PSNR {state['best_val_psnr']:.2f} dB at epoch {state['best_epoch']} "
          f"({state['backend']}, {state['precision']}, {state['devices']} device(s))")


if __name__ == "__main__":
    sys.exit(main())
