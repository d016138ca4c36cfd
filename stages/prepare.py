"""Stage prepare: decode the source photos (in worker processes, one per core) into one clean 16-bit image
stack, written shard by shard, and a manifest."""

from denoise.config import load_params
from denoise.datasets import prepare_stack
from denoise.errors import exit_on_error
from denoise.storage import load_stack, write_json


@exit_on_error
def main():
    params = load_params()
    count, skipped = prepare_stack("data/prepared", params.data.source, params.data)
    write_json("data/manifest.json", {"images": load_stack("data/prepared").entries, "skipped": skipped})
    print(f"prepared {count} images from {params.data.source!r}; skipped {len(skipped)}")
    for item in skipped:
        print(f"  skipped {item['name']}: {item['reason']}")


if __name__ == "__main__":
    main()
