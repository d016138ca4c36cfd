"""Stage outputs on disk: atomic writes, JSON, and image stacks.

An image stack is a folder of a few large files, however many images it holds: shards
`shard-00000.npy`, … (images flattened and concatenated, about 256 MiB each) and `index.json` (per image:
its metadata, shape, shard and offset). DVC hashes every file it tracks, so a stack of thousands of
images costs DVC a handful of files; stacks are written one shard at a time and read one image or patch
at a time, so no stage holds a whole data set. Every file is byte-for-byte reproducible.
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
from collections.abc import Mapping, Sequence
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


SHARD_BYTES = 256 * 2**20  # pixels per shard file; an image larger than this has a shard of its own


@dataclass
class Stack:
    """Images of any sizes with one metadata dict each (always with a "name"). `images` is a list in memory,
    or, for a stack read from disk, a ShardedImages that reads each image (or patch) when asked."""

    entries: list[dict] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)

    def append(self, entry: dict, image: np.ndarray) -> None:
        self.entries.append(entry)
        self.images.append(image)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        """(entry, image) pairs, one image in memory at a time for a stack on disk."""
        for k, entry in enumerate(self.entries):
            yield entry, self.images[k]

    def select(self, keep) -> "Stack":
        """The sub-stack of entries for which keep(entry) is true, in order."""
        chosen = [i for i, entry in enumerate(self.entries) if keep(entry)]
        images = self.images.subset(chosen) if isinstance(self.images, ShardedImages) else [self.images[i] for i in chosen]
        return Stack([self.entries[i] for i in chosen], images)

    def shape(self, k: int) -> tuple[int, ...]:
        return self.images.shape(k) if isinstance(self.images, ShardedImages) else self.images[k].shape

    def patch(self, k: int, top: int, left: int, size: int) -> np.ndarray:
        """The size×size square of image k at (top, left); from disk, only its rows are read."""
        if isinstance(self.images, ShardedImages):
            return self.images.rows(k, top, size, slice(left, left + size))
        return self.images[k][top : top + size, left : left + size]

    def by_name(self) -> "Mapping[str, np.ndarray]":
        """name -> image, each read when looked up."""
        return _ByName(self)


class _ByName(Mapping):
    def __init__(self, stack: Stack):
        self.stack, self.index = stack, {entry["name"]: k for k, entry in enumerate(stack.entries)}

    def __getitem__(self, name):
        return self.stack.images[self.index[name]]

    def __iter__(self):
        return iter(self.index)

    def __len__(self):
        return len(self.index)


class ShardedImages(Sequence):
    """The images of a stack folder, read on demand with positioned reads (no memory map, so memory stays
    bounded however large the stack and however long training samples from it)."""

    def __init__(self, folder: Path, dtype: str, items: list[dict]):
        self.folder, self.dtype, self.items = folder, np.dtype(dtype), items
        self._starts: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return self.subset(list(range(len(self.items)))[k])
        return self.rows(k, 0, self.items[k]["shape"][0])

    def shape(self, k: int) -> tuple[int, ...]:
        return tuple(self.items[k]["shape"])

    def subset(self, chosen: list[int]) -> "ShardedImages":
        return ShardedImages(self.folder, self.dtype.name, [self.items[i] for i in chosen])

    def raw_rows(self, k: int, top: int, count: int) -> np.ndarray:
        """Rows top … top + count − 1 of image k, as stored (one positioned read)."""
        item = self.items[k]
        height, *rest = item["shape"]
        row = int(np.prod(rest)) * self.dtype.itemsize
        count = max(0, min(count, height - top))
        path = self.folder / _shard_name(item["shard"])
        with open(path, "rb") as handle:
            start = self._data_start(item["shard"], handle)
            raw = os.pread(handle.fileno(), count * row, start + item["offset"] * self.dtype.itemsize + top * row)
        return np.frombuffer(raw, self.dtype).reshape(count, *rest)

    def rows(self, k: int, top: int, count: int, columns: slice = slice(None)) -> np.ndarray:
        """Rows top … top + count − 1 of image k (only `columns` of them converted), as float32."""
        return _from_dtype(self.raw_rows(k, top, count)[:, columns])

    def _data_start(self, shard: int, handle) -> int:
        if shard not in self._starts:
            handle.seek(0)
            major, _ = np.lib.format.read_magic(handle)
            (np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0)(handle)
            self._starts[shard] = handle.tell()
        return self._starts[shard]


def _shard_name(number: int) -> str:
    return f"shard-{number:05d}.npy"


def save_stack(path: str | Path, stack, dtype, shard_bytes: int = SHARD_BYTES) -> int:
    """Write a stack (a Stack, or any iterable of (entry, image) pairs, consumed one at a time) to the folder
    `path` atomically, as index.json and shards of about shard_bytes; pixels stored as `dtype`. Memory holds
    one shard at most. Returns the number of images."""
    dtype = np.dtype(dtype)
    index, pending, pending_size, shard = [], [], 0, 0
    with atomic_path(path) as tmp:
        tmp.mkdir()

        def flush():
            nonlocal pending, pending_size, shard
            if pending:
                np.save(tmp / _shard_name(shard), np.concatenate(pending), allow_pickle=False)
                pending, pending_size, shard = [], 0, shard + 1

        for entry, image in stack:
            if pending and (pending_size + image.size) * dtype.itemsize > shard_bytes:
                flush()
            index.append({"meta": entry, "shape": list(image.shape), "shard": shard, "offset": pending_size})
            pending.append(_to_dtype(image, dtype).ravel())
            pending_size += image.size
        flush()
        (tmp / "index.json").write_text(json.dumps({"dtype": dtype.name, "images": index}, indent=1, sort_keys=True) + "\n")
    return len(index)


def load_stack(path: str | Path) -> Stack:
    """A stack on disk, read lazily; pixels come back as float32 in [0, 1] (noisy ones may lie outside)."""
    path = Path(path)
    index = json.loads((path / "index.json").read_text())
    return Stack([item["meta"] for item in index["images"]], ShardedImages(path, index["dtype"], index["images"]))


def _to_dtype(image: np.ndarray, dtype) -> np.ndarray:
    if image.dtype == np.dtype(dtype):  # already converted (a worker process did it)
        return image
    if np.dtype(dtype) == np.uint16:
        return np.round(np.clip(image, 0.0, 1.0) * 65535.0).astype(np.uint16)
    return image.astype(dtype)


def to_stored(image: np.ndarray, dtype) -> np.ndarray:
    """An image as save_stack stores it (16-bit: rounded from [0, 1]); save_stack takes such images as they are."""
    return _to_dtype(image, dtype)


def _from_dtype(raw: np.ndarray) -> np.ndarray:
    if raw.dtype == np.uint16:
        return raw.astype(np.float32) / 65535.0
    return raw.astype(np.float32)
