"""Stage prepare: decode the source photos into one clean 16-bit image stack and a manifest."""

import numpy as np

from denoise.config import load_params
from denoise.datasets import prepare
from denoise.errors import exit_on_error
from denoise.storage import save_stack, write_json


@exit_on_error
def main():
    params = load_params()
    stack, skipped = prepare(params.data.source, params.data)
    save_stack("data/prepared", stack, np.uint16)
    write_json("data/manifest.json", {"images": stack.entries, "skipped": skipped})
    print(f"prepared {len(stack)} images from {params.data.source!r}; skipped {len(skipped)}")
    for item in skipped:
        print(f"  skipped {item['name']}: {item['reason']}")


if __name__ == "__main__":
    main()
