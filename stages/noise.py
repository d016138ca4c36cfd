"""Stage noise: a seeded noisy copy of every clean image at every noise level, drawn in worker processes
(one per core) and written shard by shard."""

from denoise.config import load_params
from denoise.errors import exit_on_error
from denoise.noise import save_noisy_stack
from denoise.storage import load_stack


@exit_on_error
def main():
    params = load_params()
    count = save_noisy_stack("data/noisy", load_stack("data/prepared"), params.noise)
    print(f"wrote {count} noisy copies ({params.noise.type}, {params.noise.level_key}={params.noise.levels.to_yaml()})")


if __name__ == "__main__":
    main()
