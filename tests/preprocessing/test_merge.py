"""``--merge``: all shards present, one shard count, no crop listed twice."""

import pytest

from forensics.errors import ForensicsError
from preprocessing.merge import merge_shards
from tests.preprocessing.conftest import copy


def test_merge_refuses_missing_mixed_or_overlapping_shards(reference, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ForensicsError, match="no shard manifests"):
        merge_shards(out)
    copy(reference / "manifest.csv", out / "manifest.shard-0-of-3.csv")
    with pytest.raises(ForensicsError, match="shard\\(s\\) 1, 2 of 3"):
        merge_shards(out)
    copy(reference / "manifest.csv", out / "manifest.shard-0-of-2.csv")
    with pytest.raises(ForensicsError, match="different shard counts"):
        merge_shards(out)
    (out / "manifest.shard-0-of-3.csv").unlink()
    copy(reference / "manifest.csv", out / "manifest.shard-1-of-2.csv")
    with pytest.raises(ForensicsError, match="listed by two shards"):
        merge_shards(out)
    assert not (out / "manifest.csv").exists()
