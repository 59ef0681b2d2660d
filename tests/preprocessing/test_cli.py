"""``forensics preprocess``: the interface other tools and the docs rely on, and its errors."""

import subprocess
import sys

import pytest

from tests.preprocessing.conftest import preprocess


def test_help_lists_the_interface():
    out = subprocess.run([sys.executable, "-m", "forensics", "preprocess", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for flag in ("--layout", "--root", "--out", "--splits", "--shard", "--merge", "--device", "--workers",
                 "--frames", "--stride", "--all-frames", "--all-faces", "--methods", "--compressions",
                 "--only-splits", "--crop-size", "--crop-scale", "--thresholds", "--min-face-size", "--boxes",
                 "--val-fraction"):
        assert flag in out
    assert "{ffpp,dfd,celebdf,dfdc,dfdcp,folder,images}" in out


@pytest.mark.parametrize("args, message", [
    (["--out", "OUT"], "--layout and --root are required"),
    (["--layout", "ffpp", "--root", "ROOT", "--out", "OUT", "--boxes", "b.csv"], "--boxes is for --layout images"),
    (["--layout", "ffpp", "--root", "ROOT", "--out", "OUT", "--val-fraction", "0.2"], "--val-fraction is for"),
    (["--layout", "ffpp", "--root", "ROOT", "--out", "OUT", "--methods", "Deepfakes"], "no method 'Deepfakes'"),
    (["--layout", "ffpp", "--root", "ROOT", "--out", "OUT", "--compressions", "c40"], "no compression 'c40'"),
    (["--layout", "celebdf", "--root", "ROOT", "--out", "OUT"], "not a Celeb-DF root"),
    (["--layout", "ffpp", "--root", "ROOT/missing", "--out", "OUT"], "is not a folder"),
    (["--layout", "ffpp", "--root", "ROOT", "--out", "OUT", "--device", "tpu"], "--device must be"),
])
def test_user_errors_are_one_line_with_status_2(pp_root, tmp_path, capsys, args, message):
    args = [a.replace("ROOT", str(pp_root)).replace("OUT", str(tmp_path / "out")) for a in args]
    assert preprocess(*args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("forensics preprocess: error:") and len(err.splitlines()) == 1
    assert message in err
    assert not (tmp_path / "out").exists()


def test_bad_shard_value_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as info:
        preprocess("--out", "x", "--shard", "2/2")
    assert info.value.code == 2 and "K must be in 0..N-1" in capsys.readouterr().err
