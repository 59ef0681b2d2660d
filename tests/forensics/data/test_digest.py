"""Lineage digests: the same data gives the same digest; one changed crop or manifest row changes it."""

import json
import shutil

import pytest

from forensics.data.digest import manifest_digest
from forensics.data.manifest import read_manifest
from forensics.errors import ManifestError
from forensics.media.crops import read_image, write_png
from forensics.training.lineage import data_lineage


@pytest.fixture
def crops(crop_manifest, tmp_path):
    """A private copy of the session's crops (copy2 keeps modification times) and summary.json."""
    src = crop_manifest.parent
    shutil.copytree(src, tmp_path / "crops", copy_function=shutil.copy2)
    return tmp_path / "crops" / "manifest.csv"


@pytest.mark.parametrize("mode", ["stat", "content"])
def test_digest_changes_with_one_crop_and_not_otherwise(crops, mode):
    first = manifest_digest(crops, mode)
    assert first == manifest_digest(crops, mode)  # nothing changed: same digest
    assert first["files"] > 100 and first["missing"] == 0 and first["bytes"] > 0
    crop = crops.parent / read_manifest(crops)["path"].iloc[7]
    image = read_image(crop)
    image[100, 100] ^= 1  # one pixel, one grey level
    write_png(crop, image)
    changed = manifest_digest(crops, mode)
    assert changed["digest"] != first["digest"] and changed["manifest_sha256"] == first["manifest_sha256"]
    crop.unlink()
    assert manifest_digest(crops, mode)["missing"] == 1


def test_digest_changes_with_the_manifest_and_matches_preprocess(crops):
    lineage = data_lineage(crops)
    assert lineage["matches_preprocess"] is True  # forensics preprocess wrote the same digest
    assert json.loads((crops.parent / "summary.json").read_text())["lineage"]["digest"] == lineage["digest"]
    text = crops.read_text().splitlines(keepends=True)
    crops.write_text("".join(text[:-1]))  # one row fewer
    changed = data_lineage(crops)
    assert changed["digest"] != lineage["digest"] and changed["matches_preprocess"] is False


def test_missing_manifest_is_a_one_line_error(tmp_path):
    with pytest.raises(ManifestError, match="manifest not found"):
        manifest_digest(tmp_path / "nope.csv")
