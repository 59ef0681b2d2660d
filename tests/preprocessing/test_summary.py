"""The run summary: counts, coverage histogram, merging shards' summaries."""

from preprocessing.pipeline import Outcome, Settings
from preprocessing.summary import build_summary, coverage_histogram, merge_summaries


def test_coverage_histogram_bins():
    assert coverage_histogram([0.0, 0.2, 0.5, 0.95, 1.0, 1.0]) == {
        "0%": 1, "1-49%": 1, "50-89%": 1, "90-99%": 1, "100%": 2}


def test_summary_counts_and_merge():
    outcomes = [Outcome("a", "done", sampled=4, decoded=4, faces=4, asked=4),
                Outcome("b", "done", sampled=4, decoded=4, faces=0, asked=4),
                Outcome("c", "skipped", sampled=4, decoded=4, faces=3, asked=4, cuts=[2]),
                Outcome("d", "failed", reason="cannot open video d")]
    s = build_summary(outcomes, Settings(), 2.0, {"shard": [0, 2]})
    assert s["videos"] == {"total": 4, "done": 2, "skipped": 1, "failed": 1, "no_face": 1, "with_cuts": 1}
    assert s["cuts"] == [{"video": "c", "frames": [2]}]
    assert s["frames"] == {"sampled": 12, "decoded": 12, "faces": 7}
    assert s["failed"] == [{"video": "d", "reason": "cannot open video d"}]
    assert s["no_face"] == ["b"] and [x["video"] for x in s["short"]] == ["b", "c"]
    assert s["throughput"]["frames_per_s"] == 4.0  # only the videos done in this run
    merged = merge_summaries([s, s])
    assert merged["videos"]["total"] == 8 and merged["shards"] == 2 and len(merged["failed"]) == 2
    assert merged["videos"]["with_cuts"] == 2 and len(merged["cuts"]) == 2


def test_partly_decodable_video_is_listed_as_truncated_not_failed():
    outcomes = [Outcome("a", "done", sampled=8, decoded=5, faces=5, asked=8),
                Outcome("b", "done", sampled=8, decoded=8, faces=8, asked=8)]
    s = build_summary(outcomes, Settings(), 1.0, {})
    assert s["truncated"] == [{"video": "a", "sampled": 8, "decoded": 5}]
    assert s["videos"]["failed"] == 0 and s["videos"]["done"] == 2
    assert merge_summaries([s, s])["truncated"] == s["truncated"] * 2
