"""Frame sampling: evenly spaced (short videos give every frame once), stride, all."""

import pytest

from forensics.media.sampling import sample_indices


def test_even_includes_first_and_last_and_is_evenly_spaced():
    idx = sample_indices(300, "even", 32)
    assert len(idx) == 32 and idx[0] == 0 and idx[-1] == 299
    gaps = [b - a for a, b in zip(idx, idx[1:])]
    assert min(gaps) >= 9 and max(gaps) <= 10


def test_short_video_gives_every_frame_once():
    assert sample_indices(10, "even", 32) == list(range(10))
    assert sample_indices(0, "even", 32) == []


def test_stride_and_all():
    assert sample_indices(10, "stride", stride=4) == [0, 4, 8]
    assert sample_indices(5, "all") == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        sample_indices(10, "random")
