"""What a number was computed from: a digest of a crop manifest and of the crops it lists.

A metric on a dashboard is only as trustworthy as the data behind it. ``forensics preprocess``
writes :func:`manifest_digest` into ``summary.json``; training and evaluation compute it again
and put it into ``report.json`` and the W&B dataset artifact, so a result can be traced to the
exact crops it came from, offline too.

Hashing the bytes of a million crops (~70 GB) takes the better part of an hour; a ``stat`` of
each takes seconds (``benchmarks/digest.py``). So the default (``mode="stat"``) digests the
manifest's bytes and each crop's path, size and modification time in nanoseconds, the
signature ``rsync`` and ``make`` trust to tell a changed file. A copy that does not keep
modification times (``cp`` without ``-p``) changes a stat digest but not a ``content`` one,
which hashes every crop's bytes instead.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from forensics.errors import ManifestError

MODES = ("stat", "content")
#: stat() calls in flight: on a network file system (NFS, Lustre) each one is a round trip.
THREADS = 16
#: Crops per thread task: a task per crop would cost more in hand-offs than a local stat.
CHUNK = 2048


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _signature(path: Path, mode: str) -> tuple[str, int]:
    """A crop's part of the digest, and its size (-1 when it is missing)."""
    try:
        if mode == "content":
            return file_sha256(path), path.stat().st_size
        st = path.stat()
        return f"{st.st_size}:{st.st_mtime_ns}", st.st_size
    except FileNotFoundError:
        return "missing", -1


def manifest_digest(manifest: str | os.PathLike, mode: str = "stat") -> dict[str, Any]:
    """Digest of ``manifest`` and of the crops its ``path`` column lists (relative to its folder).

    Args:
        manifest: a crop manifest CSV (``docs/manifest.md``).
        mode: ``stat`` (size and modification time of each crop: seconds for a million) or
            ``content`` (SHA-256 of each crop's bytes).

    Returns:
        ``digest`` (``sha256:<hex>`` over everything), ``mode``, ``manifest_sha256``, ``files``
        (distinct crops listed, or tar shards when the manifest has a ``shard`` column),
        ``missing`` (listed but not on disk) and ``bytes`` (their total size).

    Raises:
        ManifestError: the manifest is missing or unreadable.
    """
    if mode not in MODES:
        raise ValueError(f"digest mode must be one of {', '.join(MODES)}, got '{mode}'")
    manifest = Path(manifest)
    if not manifest.is_file():
        raise ManifestError(f"{manifest}: manifest not found")
    manifest_sha = file_sha256(manifest)
    try:
        table = pd.read_csv(manifest, usecols=lambda c: c in ("path", "shard"), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        raise ManifestError(f"{manifest}: cannot read: {str(error).splitlines()[0]}") from None
    # Crops packed in tar shards (docs/manifest.md): the shard files hold the bytes.
    column = "shard" if "shard" in table and (table["shard"] != "").all() else "path"
    files = list(dict.fromkeys(table[column])) if column in table else []
    root = manifest.parent
    chunks = [files[i:i + CHUNK] for i in range(0, len(files), CHUNK)]
    with ThreadPoolExecutor(THREADS) as pool:
        signatures = [s for part in pool.map(lambda chunk: [_signature(root / p, mode) for p in chunk], chunks)
                      for s in part]
    h = hashlib.sha256(f"forensics-digest-v1 {mode} {manifest_sha}\n".encode())
    for path, (signature, _) in zip(files, signatures):
        h.update(f"{path}\0{signature}\n".encode())
    sizes = [size for _, size in signatures]
    return {"digest": f"sha256:{h.hexdigest()}", "mode": mode, "manifest_sha256": manifest_sha,
            "files": len(files), "missing": sum(s < 0 for s in sizes), "bytes": sum(s for s in sizes if s > 0)}
