"""The classical baseline's result cache (DENOISE_BASELINE_CACHE): a result is reused only for the same inputs."""

import numpy as np
import pytest

from denoise import baseline


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    clean = np.tile(np.linspace(0.2, 0.8, 24, dtype=np.float32), (20, 1))[..., None]
    return (clean + rng.normal(0, 25 / 255, clean.shape)).astype(np.float32)


def test_without_the_variable_nothing_is_written(image, tmp_path, monkeypatch):
    monkeypatch.delenv(baseline.CACHE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    out = baseline.denoise_job((image, "nlm", "gaussian", 25))
    assert out.shape == image.shape and list(tmp_path.iterdir()) == []


def test_a_cached_result_is_the_computed_one_and_is_reused(image, tmp_path, monkeypatch):
    monkeypatch.setenv(baseline.CACHE_ENV, str(tmp_path / "cache"))
    first = baseline.denoise_job((image, "nlm", "gaussian", 25))
    np.testing.assert_array_equal(first, baseline.classical_denoise(image, "nlm", "gaussian", 25))
    assert len(list((tmp_path / "cache").iterdir())) == 1

    def fail(*args):
        raise AssertionError("computed again")

    monkeypatch.setattr(baseline, "classical_denoise", fail)
    np.testing.assert_array_equal(baseline.denoise_job((image, "nlm", "gaussian", 25)), first)
    with pytest.raises(AssertionError, match="computed again"):  # another level is another result
        baseline.denoise_job((image, "nlm", "gaussian", 15))


def test_the_key_changes_with_every_input(image):
    key = baseline.result_key(image, "nlm", "gaussian", 25)
    assert baseline.result_key(image.copy(), "nlm", "gaussian", 25) == key
    changed = image.copy()
    changed[3, 4, 0] += 1 / 255
    others = [baseline.result_key(changed, "nlm", "gaussian", 25), baseline.result_key(image, "nlm", "gaussian", 15),
              baseline.result_key(image, "bm3d", "gaussian", 25), baseline.result_key(image, "anscombe_nlm", "poisson", 25),
              baseline.result_key(image.reshape(24, 20, 1), "nlm", "gaussian", 25), baseline.result_key(image.astype(np.float64), "nlm", "gaussian", 25)]
    assert len({key, *others}) == 1 + len(others)


def test_an_unreadable_cache_file_is_computed_again(image, tmp_path, monkeypatch):
    monkeypatch.setenv(baseline.CACHE_ENV, str(tmp_path))
    path = tmp_path / f"{baseline.result_key(image, 'nlm', 'gaussian', 25)}.npy"
    path.write_bytes(b"half a file")
    out = baseline.denoise_job((image, "nlm", "gaussian", 25))
    np.testing.assert_array_equal(out, baseline.classical_denoise(image, "nlm", "gaussian", 25))
    np.testing.assert_array_equal(np.load(path), out)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
