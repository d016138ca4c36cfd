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
import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .parallel import ordered_map


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


def save_keras(model, path: str | Path) -> None:
    """Save a Keras model to `path` atomically and byte for byte reproducibly.

    Keras's `.keras` file is a zip of config.json, metadata.json and the weights; as written it differs on every
    save of the same weights (the zip entries' times, metadata.json's `date_saved`, and config.json's
    `shared_object_id`s, the memory addresses of objects shared between layers), so a rerun of a stage that
    trains the same weights would change DVC's hash of the model and re-run everything after it. Here the
    entries get a fixed time, `date_saved` is dropped and the shared ids are numbered in order of appearance."""
    with atomic_path(path) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp) as archive:
            members = [(info, archive.read(info)) for info in archive.infolist()]
        with zipfile.ZipFile(tmp, "w") as archive:
            for info, data in members:
                if info.filename == "metadata.json":
                    metadata = json.loads(data)
                    metadata.pop("date_saved", None)
                    data = json.dumps(metadata).encode()
                elif info.filename == "config.json":
                    data = json.dumps(_renumber_shared_objects(json.loads(data), {})).encode()
                fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
                fixed.compress_type, fixed.external_attr = info.compress_type, info.external_attr
                archive.writestr(fixed, data)


def _renumber_shared_objects(config, numbers: dict):
    """`config` with each distinct `shared_object_id` replaced by 1, 2, … in order of first appearance."""
    if isinstance(config, dict):
        return {key: (numbers.setdefault(value, len(numbers) + 1) if key == "shared_object_id" else _renumber_shared_objects(value, numbers))
                for key, value in config.items()}
    if isinstance(config, list):
        return [_renumber_shared_objects(value, numbers) for value in config]
    return config


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
        return self.subset([i for i, entry in enumerate(self.entries) if keep(entry)])

    def subset(self, chosen: list[int]) -> "Stack":
        """The sub-stack of the entries numbered `chosen` (a stack on disk stays on disk)."""
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
        self._files: dict[tuple[int, bool], int] = {}  # (shard, patch reads) -> open descriptor

    def __del__(self):
        self.close()

    def __getstate__(self):  # descriptors mean nothing in another process: it opens its own
        return {**self.__dict__, "_files": {}}

    def close(self) -> None:
        for descriptor in getattr(self, "_files", {}).values():
            os.close(descriptor)
        self._files = {}

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
        descriptor = self._descriptor(item["shard"], patch=count < height)
        start = self._data_start(item["shard"], descriptor)
        raw = os.pread(descriptor, count * row, start + item["offset"] * self.dtype.itemsize + top * row)
        return np.frombuffer(raw, self.dtype).reshape(count, *rest)

    def _descriptor(self, shard: int, patch: bool) -> int:
        """An open descriptor of the shard, kept for the life of this object in this process. Patch reads get
        their own, with the kernel's read-ahead off (POSIX_FADV_RANDOM): on a stack larger than the page cache
        each patch is a disk read, and read-ahead (8 MB here) would read 32 times a 64-row patch of a 2048-wide
        16-bit image."""
        key = (shard, patch)
        if key not in self._files:
            descriptor = os.open(self.folder / _shard_name(shard), os.O_RDONLY | os.O_CLOEXEC)
            if patch:
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_RANDOM)
            self._files[key] = descriptor
        return self._files[key]

    def rows(self, k: int, top: int, count: int, columns: slice = slice(None)) -> np.ndarray:
        """Rows top … top + count − 1 of image k (only `columns` of them converted), as float32."""
        return _from_dtype(self.raw_rows(k, top, count)[:, columns])

    def _data_start(self, shard: int, descriptor: int) -> int:
        """Where the shard's pixels start (after the .npy header)."""
        if shard not in self._starts:
            handle = io.BytesIO(os.pread(descriptor, 4096, 0))  # .npy headers are padded to a multiple of 64 bytes
            major, _ = np.lib.format.read_magic(handle)
            (np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0)(handle)
            self._starts[shard] = handle.tell()
        return self._starts[shard]


def _shard_name(number: int) -> str:
    return f"shard-{number:05d}.npy"


def shard_groups(sizes, shard_bytes: int = SHARD_BYTES) -> list[list[int]]:
    """Consecutive item numbers grouped into shards of at most shard_bytes each (`sizes` in bytes; an item
    larger than that has a shard of its own). Depends on the sizes alone, never on the number of cores, so
    that the same data give the same files on any machine."""
    groups: list[list[int]] = []
    total = 0
    for k, size in enumerate(sizes):
        if not groups or (groups[-1] and total + size > shard_bytes):
            groups.append([])
            total = 0
        groups[-1].append(k)
        total += size
    return groups


HEADER_BYTES = 128  # a flat array's .npy version 1 header, whatever its length (padded to 64-byte multiples)


class _ShardWriter:
    """One shard file, a flat .npy array written image by image (no copy of the shard in memory): a header
    for the final length is written over the placeholder when the shard is closed."""

    def __init__(self, path: Path, dtype):
        self.path, self.dtype, self.size = path, np.dtype(dtype), 0
        self.file = open(path, "wb")
        self.file.write(self._header())

    def _header(self) -> bytes:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (self.size,)})
        return header.getvalue()

    def add(self, image: np.ndarray) -> int:
        """Append an image (converted to the shard's dtype); returns its offset in pixels."""
        offset = self.size
        self.file.write(np.ascontiguousarray(to_stored(image, self.dtype)).data)
        self.size += image.size
        return offset

    def close(self) -> None:
        header = self._header()
        self.file.seek(0)
        assert self.file.write(header) == HEADER_BYTES, "npy header length"
        self.file.close()


def save_stack(path: str | Path, stack, dtype, shard_bytes: int = SHARD_BYTES) -> int:
    """Write a stack (a Stack, or any iterable of (entry, image) pairs, consumed one at a time) to the folder
    `path` atomically, as index.json and shards of about shard_bytes; pixels stored as `dtype`. Memory holds
    one image at a time. Returns the number of images."""
    dtype = np.dtype(dtype)
    index: list[dict] = []
    with atomic_path(path) as tmp:
        tmp.mkdir()
        shard, number = None, -1
        for entry, image in stack:
            if shard is None or (shard.size and (shard.size + image.size) * dtype.itemsize > shard_bytes):
                if shard is not None:
                    shard.close()
                number += 1
                shard = _ShardWriter(tmp / _shard_name(number), dtype)
            index.append({"meta": entry, "shape": list(image.shape), "shard": number, "offset": shard.add(image)})
        if shard is not None:
            shard.close()
        _write_index(tmp, dtype, index)
    return len(index)


def save_stack_parallel(path: str | Path, jobs, make, dtype, processes: int | None = None, passed_back: list | None = None, check=None) -> int:
    """Write a stack atomically whose shards are made and written by worker processes (default: every core),
    one shard per job: make(job) yields the (entry, image) pairs of that shard (group them with shard_groups);
    a pair (entry, None) is not stored but appended to `passed_back` (e.g. an undecodable file). The shards
    hold the same bytes as save_stack's. check(count), if given, may raise before anything is in place."""
    dtype = np.dtype(dtype)
    index: list[dict] = []
    with atomic_path(path) as tmp:
        tmp.mkdir()
        tasks = ((make, job, tmp, dtype) for job in jobs)
        shard = -1
        for written, others in ordered_map(_write_shard, tasks, processes, ahead=1):
            if written:
                shard += 1
                (tmp / written[0][3]).rename(tmp / _shard_name(shard))
                index += [{"meta": entry, "shape": shape, "shard": shard, "offset": offset} for entry, shape, offset, _ in written]
            if passed_back is not None:
                passed_back += others
        if check:
            check(len(index))
        _write_index(tmp, dtype, index)
    return len(index)


def _write_shard(task) -> tuple[list, list]:
    make, job, folder, dtype = task
    handle, name = tempfile.mkstemp(dir=folder, prefix="part-", suffix=".npy")
    os.close(handle)
    written, others = [], []
    shard = _ShardWriter(Path(name), dtype)
    try:
        for entry, image in make(job):
            if image is None:
                others.append(entry)
            else:
                written.append((entry, list(image.shape), shard.add(image), Path(name).name))
    finally:
        shard.close()
    if not written:
        os.unlink(name)
    return written, others


def _write_index(folder: Path, dtype, index: list[dict]) -> None:
    (folder / "index.json").write_text(json.dumps({"dtype": np.dtype(dtype).name, "images": index}, indent=1, sort_keys=True) + "\n")


def load_stack(path: str | Path) -> Stack:
    """A stack on disk, read lazily; pixels come back as float32 in [0, 1] (noisy ones may lie outside)."""
    path = Path(path)
    index = json.loads((path / "index.json").read_text())
    return Stack([item["meta"] for item in index["images"]], ShardedImages(path, index["dtype"], index["images"]))


def to_stored(image: np.ndarray, dtype) -> np.ndarray:
    """An image as a stack stores it (16-bit: rounded from [0, 1]); an image already in `dtype` (a worker
    process converted it) is stored as it is."""
    if image.dtype == np.dtype(dtype):
        return image
    if np.dtype(dtype) == np.uint16:
        return np.round(np.clip(image, 0.0, 1.0) * 65535.0).astype(np.uint16)
    return image.astype(dtype)


def _from_dtype(raw: np.ndarray) -> np.ndarray:
    if raw.dtype == np.uint16:
        return raw.astype(np.float32) / 65535.0
    return raw.astype(np.float32)
