"""Stage evaluate: noisy input, classical baseline, reference model and model on full test images."""

from denoise.config import load_params
from denoise.datasets import load_split
from denoise.errors import exit_on_error
from denoise.evaluation import evaluate
from denoise.storage import load_stack


@exit_on_error
def main():
    params = load_params()
    summary = evaluate(
        test=load_split("data/split", "test"), train=load_split("data/split", "train"), baseline=load_stack("data/baseline"),
        model_paths={"reference": "models/reference.keras", "model": "models/model.keras"},
        config=params.evaluate, level_key=params.noise.level_key, out_dir="eval", references=params.noise.type != "none",
    )
    for group, methods in summary.items():
        print(group + ": " + ", ".join(f"{m} {v['psnr']:.2f} dB / {v['ssim']:.3f}" if "psnr" in v else f"{m} estimated σ {v['sigma']:.2f}"
                                       for m, v in methods.items()))


if __name__ == "__main__":
    main()
