"""``forensics preprocess --merge``: the shards' manifests and summaries, merged into one.

Shard ``K`` of ``N`` writes ``OUT/manifest.shard-K-of-N.csv`` and
``OUT/summary.shard-K-of-N.json`` (crops go to the shared ``OUT/crops``; shards never touch
the same video). Merging checks that all ``N`` shards have finished, concatenates their
rows in the canonical order (so a merged sharded run equals a single run, byte for byte)
and writes ``OUT/manifest.csv`` and ``OUT/summary.json``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import pandas as pd

from forensics.errors import ForensicsError
from forensics.data.manifest import read_manifest, write_manifest
from forensics.data.digest import manifest_digest
from preprocessing.runner import SORT_COLUMNS
from preprocessing.summary import merge_summaries, write_summary

log = logging.getLogger(__name__)

_SHARD = re.compile(r"manifest\.shard-(\d+)-of-(\d+)\.csv$")


def merge_shards(out: str | os.PathLike) -> pd.DataFrame:
    """Merge the shard manifests of ``out`` into ``out/manifest.csv``; return the merged manifest.

    Raises:
        ForensicsError: no shard manifests, shards of different counts, missing shards, or two
            shards listing the same crop.
    """
    out = Path(out)
    found: dict[int, dict[int, Path]] = {}
    for path in sorted(out.glob("manifest.shard-*-of-*.csv")):
        match = _SHARD.search(path.name)
        if match:
            found.setdefault(int(match.group(2)), {})[int(match.group(1))] = path
    if not found:
        raise ForensicsError(f"{out}: no shard manifests (manifest.shard-K-of-N.csv) to merge")
    if len(found) > 1:
        raise ForensicsError(f"{out}: shard manifests of different shard counts ({', '.join(map(str, sorted(found)))}): "
                             f"remove those of the run you don't want")
    (count, shards), = found.items()
    missing = [k for k in range(count) if k not in shards]
    if missing:
        raise ForensicsError(f"{out}: shard(s) {', '.join(map(str, missing))} of {count} have no manifest yet "
                             f"(not run, or not finished)")
    frames = [read_manifest(shards[k]) for k in range(count)]
    merged = pd.concat(frames, ignore_index=True)
    # Extra columns are read as text: the face index sorts as a number.
    merged["face"] = merged["face"].astype(int) if "face" in merged.columns else 0
    duplicated = merged["path"].duplicated()
    if duplicated.any():
        raise ForensicsError(f"{out}: {merged['path'][duplicated].iloc[0]} is listed by two shards "
                             f"(shards of different runs mixed?)")
    merged = merged.sort_values(SORT_COLUMNS, kind="stable").reset_index(drop=True)
    write_manifest(merged, out / "manifest.csv")

    summaries = []
    for k in range(count):
        path = out / f"summary.shard-{k}-of-{count}.json"
        if path.is_file():
            summaries.append(json.loads(path.read_text()))
        else:
            log.warning("%s missing: the merged summary leaves shard %d out", path.name, k)
    if summaries:
        write_summary(out / "summary.json", {**merge_summaries(summaries),
                                             "lineage": manifest_digest(out / "manifest.csv")})
    log.info("merged %d shards: %d crops in %s", count, len(merged), out / "manifest.csv")
    return merged
