import hashlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from denoise.storage import Stack, atomic_path, load_stack, save_stack, save_stack_parallel, shard_groups


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_stack_round_trip_any_sizes(tmp_path, smooth_image):
    stack = Stack()
    stack.append({"name": "a", "level": 25.0}, smooth_image(17, 23))
    stack.append({"name": "b/c.png"}, smooth_image(40, 8, channels=3))
    save_stack(tmp_path / "s", stack, np.float32)
    back = load_stack(tmp_path / "s")
    assert back.entries == stack.entries
    for a, b in zip(stack.images, back.images):
        np.testing.assert_array_equal(a, b)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["index.json", "shard-00000.npy"]


def test_16_bit_stack_keeps_16_bit_precision(tmp_path):
    image = (np.arange(0, 65536, 16, dtype=np.float32) / 65535.0).reshape(64, 64, 1)
    save_stack(tmp_path / "s", Stack([{"name": "ramp"}], [image]), np.uint16)
    np.testing.assert_allclose(load_stack(tmp_path / "s").images[0], image, atol=0.5 / 65535)


def test_rewrite_is_byte_identical(tmp_path, smooth_image):
    stack = Stack([{"name": "a"}], [smooth_image()])
    save_stack(tmp_path / "s", stack, np.uint16)
    first = digest(tmp_path / "s")
    save_stack(tmp_path / "s", stack, np.uint16)
    assert digest(tmp_path / "s") == first


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


KILLED_WRITE = """
import os, sys
from pathlib import Path
from denoise import storage
if sys.argv[2] == "fallback":
    storage._exchange = lambda first, second: False  # as on a system without renameat2
storage._discard = lambda path: os._exit(9)  # killed right after the swap, before the old folder is deleted
with storage.atomic_path(Path(sys.argv[1])) as tmp:
    tmp.mkdir()
    (tmp / "version").write_text("new")
"""


def write_folder(path, version):
    with atomic_path(path) as tmp:
        tmp.mkdir()
        (tmp / "version").write_text(version)


@pytest.mark.parametrize("mode", ["exchange", "fallback"])
def test_a_kill_during_a_folder_swap_leaves_the_old_or_the_new_and_the_next_write_cleans_up(tmp_path, mode):
    import subprocess
    import sys

    target = tmp_path / "out"
    write_folder(target, "old")
    result = subprocess.run([sys.executable, "-c", KILLED_WRITE, str(target), mode], capture_output=True, text=True)
    assert result.returncode == 9, result.stderr
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "out"]
    assert leftovers  # the old folder, under a temporary name, was not deleted
    assert (target / "version").read_text() == "new"
    write_folder(target, "next")
    assert (target / "version").read_text() == "next"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # stale temporary names cleared


def test_a_kill_after_the_fallback_backup_restores_the_old_folder_for_readers_of_the_next_write(tmp_path):
    """The next write to the path first puts the backed-up old folder back, so a failed next write still
    leaves the old folder there."""
    target = tmp_path / "out"
    write_folder(target, "old")
    target.rename(tmp_path / ".out.old.tmp")  # as a kill between the fallback's two renames leaves it
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert (target / "version").read_text() == "old"
            raise RuntimeError("this write fails too")
    assert (target / "version").read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out"]


def test_stacks_are_written_in_shards_and_read_by_image_and_by_patch(tmp_path, smooth_image):
    images = [smooth_image(30 + k, 20 + 3 * k, channels=1 + 2 * (k % 2), seed=k) for k in range(7)]
    stack = Stack([{"name": f"{k}"} for k in range(7)], images)
    count = save_stack(tmp_path / "s", ((e, i) for e, i in zip(stack.entries, stack.images)), np.uint16, shard_bytes=4000)
    shards = sorted(p.name for p in (tmp_path / "s").glob("shard-*.npy"))
    assert count == 7 and len(shards) > 3  # written one shard at a time, from a generator
    back = load_stack(tmp_path / "s")
    assert back.entries == stack.entries and len(back.images) == 7
    for k, image in enumerate(images):
        np.testing.assert_allclose(back.images[k], image, atol=0.5 / 65535)
        assert back.shape(k) == image.shape
        np.testing.assert_array_equal(back.patch(k, 3, 2, 8), back.images[k][3:11, 2:10])
    odd = back.select(lambda e: int(e["name"]) % 2)
    assert [e["name"] for e in odd.entries] == ["1", "3", "5"] and odd.images[1].shape == images[3].shape
    np.testing.assert_array_equal(odd.by_name()["5"], back.images[5])
    save_stack(tmp_path / "copy", odd, np.uint16)  # a lazy sub-stack streams into a new stack
    np.testing.assert_array_equal(load_stack(tmp_path / "copy").images[2], back.images[5])


def _shard_of(job):
    """A shard job for save_stack_parallel: (entry, image) pairs, and an unstored entry for odd job numbers."""
    number, images = job
    for k, image in enumerate(images):
        yield {"name": f"{number}-{k}"}, image
    if number % 2:
        yield {"name": f"{number}-skipped"}, None


@pytest.mark.parametrize("processes", [1, 2])
def test_shards_written_by_workers_equal_a_serial_write(tmp_path, smooth_image, processes):
    images = [smooth_image(20 + k, 30 - k, channels=1 + 2 * (k % 2), seed=k) for k in range(9)]
    groups = shard_groups([image.size * 2 for image in images], shard_bytes=6000)
    assert len(groups) > 2 and sum(groups, []) == list(range(9))  # consecutive, all items
    passed_back = []
    jobs = ((n, [images[k] for k in group]) for n, group in enumerate(groups))
    count = save_stack_parallel(tmp_path / "parallel", jobs, _shard_of, np.uint16, processes, passed_back)
    back = load_stack(tmp_path / "parallel")
    names = [f"{n}-{k}" for n, group in enumerate(groups) for k in range(len(group))]
    assert count == 9 and [e["name"] for e in back.entries] == names
    assert [e["name"] for e in passed_back] == [f"{n}-skipped" for n in range(len(groups)) if n % 2]
    save_stack(tmp_path / "serial", Stack([{"name": n} for n in names], images), np.uint16, shard_bytes=6000)
    assert digest(tmp_path / "parallel") == digest(tmp_path / "serial")  # same shards, same index, same bytes


def test_a_failed_check_writes_nothing(tmp_path, smooth_image):
    def check(count):
        raise ValueError(f"{count} images")

    with pytest.raises(ValueError, match="1 images"):
        save_stack_parallel(tmp_path / "s", [(0, [smooth_image()])], _shard_of, np.uint16, 2, check=check)
    assert list(tmp_path.iterdir()) == []


def test_patch_reads_keep_their_descriptors_and_travel_to_other_processes(tmp_path, smooth_image):
    save_stack(tmp_path / "s", Stack([{"name": "a"}], [smooth_image(32, 32)]), np.uint16)
    images = load_stack(tmp_path / "s").images
    expected = images[0][4:12, 2:10]
    for _ in range(3):
        np.testing.assert_array_equal(images.rows(0, 4, 8, slice(2, 10)), expected)
    assert len(images._files) == 2  # one descriptor for whole images, one for patches (read-ahead off)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:  # opens its own
        np.testing.assert_array_equal(pool.submit(images.rows, 0, 4, 8, slice(2, 10)).result(), expected)
    images.close()
    assert images._files == {}


def test_a_keras_model_saved_twice_is_byte_identical_and_loads_to_the_same_network(tmp_path):
    import keras

    from denoise.config import ModelConfig
    from denoise.models import build_model
    from denoise.storage import save_keras

    config = ModelConfig(name="unet", depth=1, width=8, noise_map=True)
    built = []
    try:
        for _ in range(2):  # other objects at other addresses, then the same weights
            keras.backend.clear_session()  # layer names as in a fresh process (this resets the policy too)
            keras.mixed_precision.set_global_policy("mixed_bfloat16")  # layers then share a policy object: shared_object_id
            built.append(build_model(config, channels=3))
        first, second = built
        second.set_weights(first.get_weights())
    finally:
        keras.mixed_precision.set_global_policy("float32")
    save_keras(first, tmp_path / "a.keras")
    save_keras(second, tmp_path / "b.keras")
    assert (tmp_path / "a.keras").read_bytes() == (tmp_path / "b.keras").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.keras", "b.keras"]  # no temporary file left
    loaded = keras.saving.load_model(tmp_path / "a.keras", safe_mode=True)
    image = np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(loaded(image)), np.asarray(first(image)))
