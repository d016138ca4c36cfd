"""Stage train: fit the model of one params section (`train`, or `reference` for the original
design) on patches of the training images; keep the best by validation PSNR."""

import sys
from pathlib import Path

from denoise.config import load_params
from denoise.datasets import load_split
from denoise.errors import exit_on_error
from denoise.training import train


@exit_on_error
def main(section: str):
    params = load_params()
    config = getattr(params, section)
    state = train(
        config, params.noise, load_split("data/split", "train"), load_split("data/split", "val"),
        model_path=Path("models/model.keras" if section == "train" else f"models/{section}.keras"), live_dir=Path(f"dvclive/{section}"), checkpoint_dir=Path(f"checkpoints/{section}"),
    )
    print(f"{section}: best val PSNR {state['best_val_psnr']:.2f} dB at epoch {state['best_epoch']} ({state['precision']})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "train")
