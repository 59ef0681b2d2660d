"""Face photo folders (VGGFace2 style), with and without a box CSV: same crop rule as videos."""

import numpy as np
import pytest

from forensics.media.crops import crop_face, read_image, write_png
from forensics.errors import ForensicsError
from forensics.synth import original_path
from forensics.media.video import read_frames
from preprocessing.layouts import list_items
from tests.preprocessing.conftest import preprocess, read


@pytest.fixture
def images_root(pp_root, tmp_path):
    root = tmp_path / "vggface2"
    frames = [f for _, f in read_frames(original_path(pp_root, "c23", "005"), [0, 10])]
    (root / "n000001").mkdir(parents=True)
    write_png(root / "n000001" / "0001_01.png", frames[0])
    write_png(root / "n000001" / "0002_01.png", frames[1])
    write_png(root / "loose.png", frames[1])
    (root / "n000001" / "0003_01.jpg").write_bytes(b"not an image")
    return root


def test_images_with_detection_and_boxes(images_root, tmp_path):
    boxes = tmp_path / "loose_bb.csv"
    boxes.write_text('NAME_ID,X,Y,W,H\n"n000001/0002_01",100,60,90,110\nn000009/0001_01,1,1,5,5\n')
    items = list_items("images", images_root, boxes=boxes)
    assert [(i.video, len(i.images)) for i in items] == [("_top", 1), ("n000001", 3)]
    out = tmp_path / "out"
    assert preprocess("--layout", "images", "--root", images_root, "--boxes", boxes, "--out", out,
                      "--workers", "0") == 0
    df = read(out).set_index("video")
    assert sorted(df.index) == ["loose", "n000001/0001_01", "n000001/0002_01"]  # the broken one is left out
    assert (df.label == 0).all() and (df.method == "original").all() and (df.frame == 0).all()
    assert (df.split == "train").all() and (df.dataset == "images").all()
    given = df.loc["n000001/0002_01"]
    assert (given.x0, given.y0, given.x1, given.y1) == (100, 60, 190, 170) and np.isnan(given.score)
    assert df.loc["n000001/0001_01"].score > 0.9  # detected
    image = read_image(images_root / "n000001" / "0002_01.png")
    np.testing.assert_array_equal(read_image(out / given.path), crop_face(image, (100, 60, 190, 170)))


def test_no_images_is_an_error(tmp_path):
    with pytest.raises(ForensicsError, match="no images"):
        list_items("images", tmp_path)
