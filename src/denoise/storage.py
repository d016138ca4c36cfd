"""Stage outputs on disk: atomic writes, JSON, and image stacks.

An image stack is a folder with two files, however many images it holds: `pixels.npy` (every image
flattened and concatenated) and `index.json` (per image: its metadata, shape and offset). DVC hashes
every file it tracks, so a stack of thousands of images still costs DVC two files. Both files are
byte-for-byte reproducible: no timestamps, sorted keys.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; on success rename it over `path`, on error remove it.

    Works for files and folders, so an interrupted stage never leaves a half-written output.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(handle)
    os.unlink(tmp)
    tmp = Path(tmp)
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp)
        elif tmp.exists():
            tmp.unlink()


def write_json(path: str | Path, data) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())


@dataclass
class Stack:
    """Images of any sizes with one metadata dict each (always with a "name")."""

    entries: list[dict] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)

    def append(self, entry: dict, image: np.ndarray) -> None:
        self.entries.append(entry)
        self.images.append(image)

    def __len__(self) -> int:
        return len(self.entries)

    def select(self, keep) -> "Stack":
        """The sub-stack of entries for which keep(entry) is true, in order."""
        chosen = [i for i, entry in enumerate(self.entries) if keep(entry)]
        return Stack([self.entries[i] for i in chosen], [self.images[i] for i in chosen])

    def by_name(self) -> dict[str, np.ndarray]:
        return {entry["name"]: image for entry, image in zip(self.entries, self.images)}


def save_stack(path: str | Path, stack: Stack, dtype) -> None:
    """Write `stack` to the folder `path` atomically; pixels are stored as `dtype`."""
    index, offset = [], 0
    for entry, image in zip(stack.entries, stack.images):
        index.append({"meta": entry, "shape": list(image.shape), "offset": offset})
        offset += image.size
    flat = np.empty(offset, dtype=dtype)
    for item, image in zip(index, stack.images):
        flat[item["offset"] : item["offset"] + image.size] = _to_dtype(image, dtype).ravel()
    with atomic_path(path) as tmp:
        tmp.mkdir()
        np.save(tmp / "pixels.npy", flat, allow_pickle=False)
        (tmp / "index.json").write_text(json.dumps({"dtype": np.dtype(dtype).name, "images": index}, indent=1, sort_keys=True) + "\n")


def load_stack(path: str | Path) -> Stack:
    """Read a stack; pixels come back as float32 in [0, 1] (noisy ones may lie outside)."""
    path = Path(path)
    index = json.loads((path / "index.json").read_text())
    flat = np.load(path / "pixels.npy", mmap_mode="r", allow_pickle=False)
    stack = Stack()
    for item in index["images"]:
        size = int(np.prod(item["shape"]))
        raw = np.asarray(flat[item["offset"] : item["offset"] + size]).reshape(item["shape"])
        stack.append(item["meta"], _from_dtype(raw))
    return stack


def _to_dtype(image: np.ndarray, dtype) -> np.ndarray:
    if np.dtype(dtype) == np.uint16:
        return np.round(np.clip(image, 0.0, 1.0) * 65535.0).astype(np.uint16)
    return image.astype(dtype)


def _from_dtype(raw: np.ndarray) -> np.ndarray:
    if raw.dtype == np.uint16:
        return raw.astype(np.float32) / 65535.0
    return raw.astype(np.float32)
