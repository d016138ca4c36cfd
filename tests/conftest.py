import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def smooth_image():
    """A deterministic natural-ish gray image (smooth gradients plus an edge), H×W×1 in [0, 1]."""

    def make(height=40, width=52, channels=1, seed=0):
        rng = np.random.default_rng(seed)
        y, x = np.mgrid[0:height, 0:width] / max(height, width)
        base = 0.5 + 0.3 * np.sin(6 * x + rng.uniform(0, 3)) * np.cos(4 * y) + 0.1 * (x > 0.5)
        planes = [np.clip(base + 0.05 * c, 0, 1) for c in range(channels)]
        return np.stack(planes, -1).astype(np.float32)

    return make
