"""Stage split: whole images into train / val / test (or test from a separate folder)."""

from denoise.config import load_params
from denoise.datasets import assign_split, prepare_test_sets, write_split
from denoise.errors import exit_on_error
from denoise.storage import load_stack


@exit_on_error
def main():
    params = load_params()
    config = params.split
    clean, noisy = load_stack("data/prepared"), load_stack("data/noisy")
    names = [entry["name"] for entry in clean.entries]
    if config.test_source is None:
        parts = assign_split(names, config.test_fraction, config.val_fraction, config.seed)
        test = None
    else:
        parts = assign_split(names, None, config.val_fraction, config.seed)
        test = prepare_test_sets(config.test_source, params.data, params.noise.with_levels(config.test_levels))
    counts = write_split("data/split", clean, noisy, parts, test)
    print("split (images): " + ", ".join(f"{part} {n}" for part, n in counts.items()))


if __name__ == "__main__":
    main()
