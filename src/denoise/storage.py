"""Stage outputs on disk: atomic writes, JSON, and image stacks.

An image stack is a folder with two files, however many images it holds: `pixels.npy` (every image
flattened and concatenated) and `index.json` (per image: its metadata, shape and offset). DVC hashes
every file it tracks, so a stack of thousands of images still costs DVC two files. Both files are
byte-for-byte reproducible: no timestamps, sorted keys.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import glob
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; on success it takes the place of `path`, on error it is removed.

    Works for files and folders, so an interrupted stage never leaves a half-written output: a file is
    renamed over the old one; a folder is swapped with the old one in one step (Linux's renameat2
    RENAME_EXCHANGE) and the old one deleted after, so a kill at any moment leaves the old or the new at
    `path`. Where the swap is not supported, the old folder is first renamed to a backup name, which the
    next write to `path` puts back if a kill came between the two renames. Temporary names left by a
    killed run are cleared by the next write to the same path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _recover(path)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(handle)
    os.unlink(tmp)
    tmp = Path(tmp)
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            if _exchange(tmp, path):
                _discard(tmp)  # the old folder, now under the temporary name
            else:
                backup = _backup_name(path)
                os.replace(path, backup)
                os.replace(tmp, path)
                _discard(backup)
        else:
            os.replace(tmp, path)
    finally:
        _discard(tmp)


def _backup_name(path: Path) -> Path:
    return path.parent / f".{path.name}.old.tmp{path.suffix}"


def _recover(path: Path) -> None:
    """Undo what a killed write to `path` left: put a backed-up old folder back, delete temporary names."""
    backup = _backup_name(path)
    if backup.exists() and not path.exists():
        os.replace(backup, path)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp{glob.escape(path.suffix)}"):
        _discard(stale)


def _discard(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths atomically (renameat2 with RENAME_EXCHANGE); False where the system cannot."""
    rename = getattr(_libc(), "renameat2", None)
    if rename is None:
        return False
    at_cwd, exchange = -100, 2
    if rename(at_cwd, os.fsencode(first), at_cwd, os.fsencode(second), exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(second))


@functools.cache
def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


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
