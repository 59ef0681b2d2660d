"""The FaceForensics++ crop rule: square of 1.3 x max(w, h), centred, padded, resized; PNG lossless."""

import cv2
import numpy as np
import pytest

from forensics.media.crops import crop_face, crop_square, read_image, write_png


def _marked_frame(box, h=240, w=320):
    """A grey frame with the box painted white: the crop shows where the box landed."""
    frame = np.full((h, w, 3), 60, np.uint8)
    x0, y0, x1, y1 = box
    frame[y0:y1, x0:x1] = 255
    return frame


def _white_extent(crop):
    ys, xs = np.nonzero(crop[..., 0] > 200)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def test_square_is_1_3_times_the_larger_side_and_centred():
    left, top, side = crop_square((100, 50, 160, 130))  # w 60, h 80
    assert side == round(80 * 1.3)
    assert left + side / 2 == pytest.approx(130, abs=0.5)
    assert top + side / 2 == pytest.approx(90, abs=0.5)
    assert crop_square((100, 50, 160, 130), scale=2.0)[2] == 160


@pytest.mark.parametrize("size", [224, 112, 299])
def test_crop_size_and_box_in_the_middle(size):
    box = (120, 80, 200, 160)  # 80x80 square face
    crop = crop_face(_marked_frame(box), box, size=size)
    assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
    x0, y0, x1, y1 = _white_extent(crop)
    # The face covers 1/1.3 of the crop, in the middle.
    assert (x1 - x0) / size == pytest.approx(1 / 1.3, abs=0.02)
    assert (x0 + x1) / 2 == pytest.approx(size / 2, abs=1.5)
    assert (y0 + y1) / 2 == pytest.approx(size / 2, abs=1.5)


def test_near_the_border_pads_instead_of_shifting_the_face():
    box = (0, 0, 60, 60)  # face in the top-left corner: the square leaves the frame
    crop = crop_face(_marked_frame(box), box, size=224)
    x0, y0, x1, y1 = _white_extent(crop)
    assert (x0 + x1) / 2 == pytest.approx(112, abs=2)
    assert (y0 + y1) / 2 == pytest.approx(112, abs=2)
    assert crop[:20, :20].max() == 0  # outside the frame: black padding
    assert crop_face(_marked_frame(box), (1000, 1000, 1100, 1100)).max() == 0  # entirely outside


def test_mask_crops_like_the_frame():
    box = (120, 80, 200, 160)
    mask = _marked_frame(box)[..., 0]
    crop = crop_face(mask, box, size=224)
    assert crop.shape == (224, 224)
    np.testing.assert_array_equal(crop > 128, crop_face(_marked_frame(box), box)[..., 0] > 128)


def test_png_is_lossless(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (224, 224), dtype=np.uint8)
    write_png(tmp_path / "rgb.png", rgb)
    write_png(tmp_path / "grey.png", grey)
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png"), rgb)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "grey.png"), cv2.IMREAD_UNCHANGED), grey)
    assert read_image(tmp_path / "missing.png") is None
