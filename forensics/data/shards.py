"""Face crops in tar shards: fewer, larger files for clusters whose file systems choke on
millions of small PNGs.

:func:`pack_crops` (``forensics pack``) copies the crops of a manifest into tar shards
(``shards/crops-000000.tar``, ...) and writes a manifest beside them that is still the index:
every row keeps its columns and gains ``shard`` (the tar, relative to the manifest), ``key``
(the sample's name inside it), ``offset`` and ``size`` (where the PNG's bytes start in the tar
and how many there are).

Each sample is stored the way WebDataset (Aizman et al., "High Performance I/O For Large
Scale Deep Learning", IEEE BigData 2019) expects it: consecutive members ``KEY.png`` (the
crop's bytes, unchanged) and ``KEY.json`` (its manifest row), so ``webdataset.WebDataset``
and ``tar tf`` read the shards as they are. We write them with the standard library's
``tarfile`` and read them by offset with ``os.pread`` rather than through the ``webdataset``
package: random access keeps :class:`forensics.data.datasets.CropDataset` a map-style
dataset, so shards serve exactly the samples, labels and per-epoch frame draws of the PNG
files, under ``DistributedSampler`` and on resume, with no shuffle buffer and no new
dependency.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd

from forensics.atomic import atomic_path
from forensics.errors import ConfigError, ManifestError

log = logging.getLogger(__name__)

#: Columns a packed manifest adds to each row.
SHARD_COLUMNS = ("shard", "key", "offset", "size")
SHARD_DIR = "shards"
ON_CORRUPT = ("stop", "skip")


class CorruptShardError(ManifestError):
    """A sample's bytes are missing from its shard (truncated tar) or do not decode."""


def is_packed(df: pd.DataFrame, source: str = "manifest") -> bool:
    """Whether the crops of ``df`` live in shards (``True``) or in PNG files (``False``).

    Raises:
        ManifestError: some rows name a shard and others do not (mixed formats).
    """
    if "shard" not in df.columns:
        return False
    named = df["shard"].astype(str).str.len() > 0
    if named.all():
        return True
    if not named.any():
        return False
    first = int(np.flatnonzero(~named.to_numpy())[0])
    raise ManifestError(f"{source}: mixed crop formats: {int(named.sum())} rows in tar shards and "
                        f"{int((~named).sum())} as files (first at row {first + 2}); pack the folder "
                        "again or use one format per manifest")


def sample_key(path: str) -> str:
    """The WebDataset key of a crop: its path without the extension, dots in the file name
    replaced (WebDataset splits a member's name at the first dot of its file name)."""
    folder, _, name = str(path).rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    stem = stem.replace(".", "_")
    return f"{folder}/{stem}" if folder else stem


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    # Fixed owner and time: packing the same crops twice gives the same bytes.
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uname, info.gname = size, 0, 0o444, "", ""
    return info


def _padded(size: int) -> int:
    return math.ceil(size / tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


class _ShardWriter:
    """Appends samples to numbered tar shards, starting a new one past ``max_bytes``."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder, self.max_bytes = folder, max_bytes
        self.count, self._tar, self._atomic, self.name = 0, None, None, ""

    def add(self, key: str, image: bytes, meta: bytes) -> tuple[str, int]:
        if self._tar is None or (self._tar.offset > 0 and self._tar.offset + len(image) > self.max_bytes):
            self._next()
        self._tar.addfile(_tarinfo(f"{key}.png", len(image)), _Bytes(image))
        offset = self._tar.offset - _padded(len(image))  # the data just written starts here
        self._tar.addfile(_tarinfo(f"{key}.json", len(meta)), _Bytes(meta))
        return self.name, offset

    def _next(self) -> None:
        self.close()
        self.name = f"{SHARD_DIR}/crops-{self.count:06d}.tar"
        self.count += 1
        self._atomic = atomic_path(self.folder / self.name)
        tmp = self._atomic.__enter__()
        self._tar = tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT)

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._atomic.__exit__(None, None, None)
            self._tar = None


class _Bytes:
    """The minimal file object ``TarFile.addfile`` reads from."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.pos + n
        chunk, self.pos = self.data[self.pos:end], min(end, len(self.data))
        return chunk


def pack_crops(manifest: str | os.PathLike, out: str | os.PathLike, shard_mb: float = 1000.0) -> Path:
    """Copy the crops of ``manifest`` into tar shards under ``out``; returns the new manifest.

    Samples are written in the order training and evaluation sort them (dataset, method,
    compression, video, frame), so a video's frames sit together in one shard.

    Raises:
        ManifestError: unreadable manifest, missing crop file, already packed, or ``out``
            already holding crops in another format.
    """
    from forensics.data.manifest import read_manifest, write_manifest

    manifest, out = Path(manifest), Path(out)
    df = read_manifest(manifest)
    if is_packed(df, str(manifest)):
        raise ManifestError(f"{manifest}: already packed into shards")
    target = out / "manifest.csv"
    if target.exists() and target.resolve() != manifest.resolve() and not is_packed(read_manifest(target), str(target)):
        raise ManifestError(f"{out}: already holds PNG crops (manifest.csv without shards); "
                            "pack into another folder: one crop format per folder")
    if target.resolve() == manifest.resolve() or (out / SHARD_DIR).resolve() == manifest.parent.resolve():
        raise ManifestError(f"{out}: pack into a folder other than the crops' own ({manifest.parent})")
    df = df.sort_values(["dataset", "method", "compression", "video", "frame"], kind="stable").reset_index(drop=True)
    keys = [sample_key(p) for p in df["path"]]
    duplicated = pd.Series(keys).duplicated()
    if duplicated.any():
        i = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise ManifestError(f"{manifest}: row {i + 2}: two crops share the key {keys[i]!r}")
    root = Path(df.attrs["root"])
    writer = _ShardWriter(out, int(shard_mb * 2**20))
    shards, offsets, sizes = [], [], []
    meta_columns = [c for c in df.columns if c not in SHARD_COLUMNS]
    try:
        for i, (rel, key) in enumerate(zip(df["path"], keys)):
            try:
                image = (root / rel).read_bytes()
            except OSError:
                raise ManifestError(f"{manifest}: row {i + 2}: crop file not found: {root / rel}") from None
            meta = json.dumps({c: _plain(df[c].iat[i]) for c in meta_columns}).encode()
            shard, offset = writer.add(key, image, meta)
            shards.append(shard), offsets.append(offset), sizes.append(len(image))
    finally:
        writer.close()
    df = df.assign(shard=shards, key=keys, offset=offsets, size=sizes)
    write_manifest(df, target)
    log.info("packed %d crops into %d shard(s) under %s", len(df), writer.count, out / SHARD_DIR)
    return target


def _plain(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(value) else float(value)
    return value


def check_shards(frames: pd.DataFrame, source: str, on_corrupt: str = "stop") -> pd.DataFrame:
    """Rows whose bytes lie wholly inside their shard; a truncated shard stops the run or,
    with ``on_corrupt='skip'``, loses the rows past its end (the same rows on every rank).

    ``frames`` has absolute shard paths in ``file``.

    Raises:
        CorruptShardError: naming the shard and the first sample key it lacks (``stop``).
        ManifestError: a shard file is missing.
    """
    ends = (frames["offset"] + frames["size"]).to_numpy()
    keep = np.ones(len(frames), dtype=bool)
    for shard, rows in frames.groupby("file", sort=False).indices.items():
        try:
            length = os.path.getsize(shard)
        except OSError:
            raise ManifestError(f"{source}: shard not found: {shard} (sample {frames['key'].iat[rows[0]]})") from None
        bad = rows[ends[rows] > length]
        if len(bad) == 0:
            continue
        what = f"{shard}: truncated tar: sample {frames['key'].iat[bad[0]]} is missing ({len(bad)} sample(s) in all)"
        if on_corrupt == "stop":
            raise CorruptShardError(what)
        log.warning("%s; skipping them (data.on_corrupt=skip)", what)
        keep[bad] = False
    return frames[keep].reset_index(drop=True) if not keep.all() else frames


_FILES: dict[str, int] = {}
MAX_OPEN = 128
_PID = os.getpid()


def read_sample(shard: str, offset: int, size: int, key: str) -> bytes:
    """The bytes of one sample, read by offset (one open file per shard and process).

    ``os.pread`` does not move a shared file position, so DataLoader workers forked after a
    shard was opened read correctly; the cache is dropped in a new process all the same.

    Raises:
        CorruptShardError: the shard ends before the sample does.
    """
    global _PID
    if os.getpid() != _PID:
        _FILES.clear()
        _PID = os.getpid()
    fd = _FILES.get(shard)
    if fd is None:
        if len(_FILES) >= MAX_OPEN:  # stay far below the open-file limit on huge datasets
            for old in _FILES.values():
                os.close(old)
            _FILES.clear()
        try:
            fd = _FILES[shard] = os.open(shard, os.O_RDONLY)
        except OSError as error:
            raise ManifestError(f"{shard}: cannot open shard (sample {key}): {error.strerror}") from None
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise CorruptShardError(f"{shard}: truncated tar: sample {key} is missing "
                                f"({len(data)} of {size} bytes at offset {offset})")
    return data


def decode_sample(data: bytes, shard: str, key: str):
    """A PNG sample as a uint8 RGB ``3 x H x W`` tensor.

    Raises:
        CorruptShardError: the bytes are not an image.
    """
    import cv2
    import torch

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise CorruptShardError(f"{shard}: corrupt sample {key}: not a decodable image")
    return torch.from_numpy(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).permute(2, 0, 1)


def check_on_corrupt(value: str) -> None:
    """Validate ``data.on_corrupt``."""
    if value not in ON_CORRUPT:
        raise ConfigError(f"data.on_corrupt must be one of {', '.join(ON_CORRUPT)}, got {value!r}")
