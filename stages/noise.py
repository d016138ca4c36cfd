"""Stage noise: a seeded noisy copy of every clean image at every noise level."""

import numpy as np

from denoise.config import load_params
from denoise.noise import add_noise_to_stack
from denoise.errors import exit_on_error
from denoise.storage import load_stack, save_stack


@exit_on_error
def main():
    params = load_params()
    noisy = add_noise_to_stack(load_stack("data/prepared"), params.noise)
    save_stack("data/noisy", noisy, np.float32)
    print(f"wrote {len(noisy)} noisy copies ({params.noise.type}, {params.noise.level_key}={params.noise.levels.to_yaml()})")


if __name__ == "__main__":
    main()
