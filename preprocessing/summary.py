"""The run summary: what a preprocessing run did, as JSON beside the manifest.

Counts of items done, skipped (already complete) and failed (with the reason), frames
sampled, decoded and with a face, a coverage histogram and throughput. *Coverage* is a
video's faced frames over the frames asked for (``--frames``): a video with fewer usable
frames than asked (too short, faces missed, a second person only) is listed under ``short``
rather than silently giving fewer crops. Videos with shot cuts are counted and listed with the
frames where a new shot starts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from forensics.atomic import atomic_write_text

#: Coverage histogram bins: (label, low inclusive, high exclusive).
COVERAGE_BINS = (("0%", 0.0, 1e-9), ("1-49%", 1e-9, 0.5), ("50-89%", 0.5, 0.9), ("90-99%", 0.9, 1.0),
                 ("100%", 1.0, float("inf")))


def coverage_histogram(coverages: Iterable[float]) -> dict[str, int]:
    """How many videos fall in each coverage bin."""
    counts = {label: 0 for label, _, _ in COVERAGE_BINS}
    for c in coverages:
        for label, low, high in COVERAGE_BINS:
            if low <= c < high:
                counts[label] += 1
                break
    return counts


def build_summary(outcomes: Sequence[Any], settings: Any, seconds: float, context: dict[str, Any]) -> dict[str, Any]:
    """Summarise :class:`preprocessing.pipeline.Outcome` records of a run."""
    by_status = {s: [o for o in outcomes if o.status == s] for s in ("done", "skipped", "failed")}
    complete = by_status["done"] + by_status["skipped"]
    coverage = {o.key: (o.faces / o.asked if o.asked else 0.0) for o in complete}
    worked = by_status["done"]
    frames_done = sum(o.sampled for o in worked)
    return {
        **context,
        "settings": settings.to_dict(),
        "videos": {"total": len(outcomes), **{s: len(v) for s, v in by_status.items()},
                   "no_face": sum(1 for o in complete if o.faces == 0),
                   "with_cuts": sum(1 for o in complete if o.cuts)},
        "frames": {"sampled": sum(o.sampled for o in complete), "decoded": sum(o.decoded for o in complete),
                   "faces": sum(o.faces for o in complete)},
        "coverage_histogram": coverage_histogram(coverage.values()),
        "failed": [{"video": o.key, "reason": o.reason} for o in sorted(by_status["failed"], key=lambda o: o.key)],
        "no_face": sorted(o.key for o in complete if o.faces == 0),
        "short": [{"video": o.key, "asked": o.asked, "sampled": o.sampled, "faces": o.faces}
                  for o in sorted(complete, key=lambda o: o.key) if o.faces < o.asked],
        # Shot cuts found (sampled frames starting a new shot): the subject's crops come from one shot.
        "cuts": [{"video": o.key, "frames": list(o.cuts)} for o in sorted(complete, key=lambda o: o.key) if o.cuts],
        # Truncated but partly decodable: kept with the frames that decoded (fewer crops).
        "truncated": [{"video": o.key, "sampled": o.sampled, "decoded": o.decoded}
                      for o in sorted(complete, key=lambda o: o.key) if o.decoded < o.sampled],
        # Worker seconds per stage over the videos done in this run ("write": crop and PNG).
        "stage_seconds": _stages(worked),
        "throughput": {"seconds": round(seconds, 3),
                       "videos_per_s": round(len(worked) / seconds, 3) if seconds > 0 else 0.0,
                       "frames_per_s": round(frames_done / seconds, 2) if seconds > 0 else 0.0},
    }


def _stages(outcomes: Sequence[Any]) -> dict[str, float]:
    decode = sum(o.stages.get("decode", 0.0) for o in outcomes)
    detect = sum(o.stages.get("detect", 0.0) for o in outcomes)
    total = sum(o.seconds for o in outcomes)
    return {"decode": round(decode, 3), "detect": round(detect, 3), "write": round(max(total - decode - detect, 0.0), 3)}


def write_summary(path: str | os.PathLike, summary: dict[str, Any]) -> None:
    """Write a summary as JSON, atomically."""
    atomic_write_text(Path(path), json.dumps(summary, indent=2) + "\n")


def merge_summaries(summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One summary of several shards' summaries (counts added, lists joined, slowest shard's time)."""
    merged: dict[str, Any] = {k: v for k, v in summaries[0].items() if k not in ("shard", "workers", "devices")}
    merged["shards"] = len(summaries)
    for section in ("videos", "frames", "coverage_histogram", "stage_seconds"):
        merged[section] = {k: round(sum(s.get(section, {}).get(k, 0) for s in summaries), 3)
                           for k in summaries[0].get(section, {})}
    for section in ("failed", "short", "cuts", "truncated"):
        merged[section] = sorted((x for s in summaries for x in s.get(section, [])), key=lambda x: x["video"])
    merged["no_face"] = sorted(x for s in summaries for x in s["no_face"])
    seconds = max(s["throughput"]["seconds"] for s in summaries)
    frames = sum(s["throughput"]["frames_per_s"] * s["throughput"]["seconds"] for s in summaries)
    merged["throughput"] = {"seconds": seconds, "frames_per_s": round(frames / seconds, 2) if seconds else 0.0,
                            "videos_per_s": round(sum(s["throughput"]["videos_per_s"] * s["throughput"]["seconds"]
                                                      for s in summaries) / seconds, 3) if seconds else 0.0}
    return merged
