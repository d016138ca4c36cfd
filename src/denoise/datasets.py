"""Data sets: decoding a source into a clean stack, and splitting it by whole image."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import numpy as np

from . import images
from .config import DataConfig, NoiseConfig
from .errors import ConfigError, DenoiseError
from .noise import add_noise_to_stack
from .storage import Stack, atomic_path, load_stack, save_stack, save_stack_parallel, shard_groups, to_stored


def source_files(source: str, key: str = "data.source", pattern: str = "*") -> tuple[Path, list[Path]]:
    """The folder and image files of a data source: a folder (searched recursively; only the files whose
    name matches the glob `pattern`, data.pattern), or a .txt list of photos bundled with scikit-image, one
    file name per line (# starts a comment)."""
    path = Path(source)
    if path.is_dir():
        return path, [file for file in images.find_images(path) if fnmatch.fnmatch(file.name, pattern)]
    folder = images.sample_folder()
    names = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    files = [folder / name for name in names if name]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ConfigError(f"{key}: {source} lists {missing[0]!r}, which scikit-image does not ship in {folder}")
    return folder, files


def _decode(path: Path, name: str, config: DataConfig, dtype=None) -> tuple[dict, np.ndarray | None]:
    """One source file: (entry, pixels), as a stack stores them where dtype is given, or ({name, reason},
    None) where it cannot be decoded."""
    try:
        decoded = images.read_image(path)
    except DenoiseError as error:
        return {"name": name, "reason": str(error).split(": ", 1)[-1]}, None
    pixels = images.limit_size(images.to_channels(decoded.pixels, config.channels), config.max_side)
    entry = {"name": name, "sha256": images.sha256_of(path), "height": pixels.shape[0], "width": pixels.shape[1]}
    return entry, (to_stored(pixels, dtype) if dtype else pixels)


def _named_files(source: str, key: str, pattern: str = "*") -> list[tuple[Path, str]]:
    """(file, name) for every image of a source; the name is its path inside the source's folder."""
    folder, files = source_files(source, key, pattern)
    return [(path, path.relative_to(folder).as_posix()) for path in files]


def _decode_files(job):
    """The (entry, pixels) pairs of one shard's files, decoded in a worker process."""
    files, config, dtype = job
    for path, name in files:
        yield _decode(path, name, config, dtype)


def _no_images(source: str, key: str, pattern: str = "*"):
    named = f" named {pattern!r}" if pattern != "*" else ""
    return ConfigError(f"{key}: no usable images{named} in {source!r} (looked for {', '.join(images.IMAGE_SUFFIXES)})")


def prepare_stack(path: str | Path, source: str, config: DataConfig, processes: int | None = None) -> tuple[int, list[dict]]:
    """Decode every image of `source` into a 16-bit clean stack at `path`: shards of files grouped by the
    sizes their headers give, each decoded and written by a worker process (default: every core). Returns
    the image count and the undecodable files with a reason; with no usable image, nothing is written."""
    named = _named_files(source, "data.source", config.pattern)
    sizes = [images.decoded_size(file, config.channels, config.max_side) * 2 for file, _ in named]
    jobs = (([named[k] for k in group], config, np.uint16) for group in shard_groups(sizes))
    skipped: list[dict] = []

    def check(count: int) -> None:
        if not count:
            raise _no_images(source, "data.source", config.pattern)

    count = save_stack_parallel(path, jobs, _decode_files, np.uint16, processes, skipped, check)
    return count, skipped


def prepare(source: str, config: DataConfig, key: str = "data.source") -> tuple[Stack, list[dict]]:
    """Decode every image of `source` into a clean stack in memory, in this process; undecodable files are
    skipped with a reason. data.pattern filters data.source only, never a test set."""
    stack, skipped = Stack(), []
    pattern = config.pattern if key == "data.source" else "*"
    for entry, pixels in _decode_files((_named_files(source, key, pattern), config, None)):
        if pixels is None:
            skipped.append(entry)
        else:
            stack.append(entry, pixels)
    if not stack.entries:
        raise _no_images(source, key, pattern)
    return stack, skipped


def prepare_test_sets(folders, data: DataConfig, noise: NoiseConfig) -> tuple[Stack, Stack]:
    """Clean and noisy stacks of one or more separate test folders; each entry names its set."""
    clean, noisy = Stack(), Stack()
    for folder in folders:
        name = Path(folder).name
        part, _ = prepare(folder, data, key="split.test_source")
        part = Stack([{**entry, "name": f"{name}/{entry['name']}", "set": name} for entry in part.entries], part.images)
        part_noisy = add_noise_to_stack(part, noise)
        clean.entries += part.entries
        clean.images += part.images
        noisy.entries += [{**entry, "set": name} for entry in part_noisy.entries]
        noisy.images += part_noisy.images
    return clean, noisy


def assign_split(names: list[str], test_fraction: float | None, val_fraction: float, seed: int) -> dict[str, str]:
    """Assign whole images to train/val/test (test_fraction None: no test images here)."""
    order = np.random.default_rng(seed).permutation(sorted(names))
    n_test = 0 if test_fraction is None else max(1, round(len(order) * test_fraction))
    n_val = max(1, round((len(order) - n_test) * val_fraction))
    if len(order) - n_test - n_val < 1:
        raise ConfigError(f"split: {len(order)} images are too few to split into train, val and test")
    sets = ["test"] * n_test + ["val"] * n_val + ["train"] * (len(order) - n_test - n_val)
    return {str(name): part for name, part in zip(order, sets)}


SPLIT_PARTS = ("train", "val", "test")


def write_split(path: str | Path, clean: Stack, noisy: Stack, parts: dict[str, str], test: tuple[Stack, Stack] | None) -> dict[str, int]:
    """Write {train,val,test}/{clean,noisy} stacks under `path` atomically, streaming each image through;
    returns image counts."""
    counts = {}
    with atomic_path(path) as tmp:
        for part in SPLIT_PARTS:
            if part == "test" and test is not None:
                part_clean, part_noisy = test
            else:
                part_clean = clean.select(lambda e: parts[e["name"]] == part)
                part_noisy = noisy.select(lambda e: parts[e["name"]] == part)
            counts[part] = save_stack(tmp / part / "clean", part_clean, np.uint16)
            save_stack(tmp / part / "noisy", part_noisy, np.float32)
    return counts


def load_split(path: str | Path, part: str) -> tuple[Stack, Stack]:
    """The (clean, noisy) stacks of one part of a split."""
    return load_stack(Path(path) / part / "clean"), load_stack(Path(path) / part / "noisy")
