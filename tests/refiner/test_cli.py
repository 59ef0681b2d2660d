"""`forensics refiner` on the command line: its steps are listed, bad input is one line, status 2."""

from __future__ import annotations

import subprocess
import sys

from forensics.cli import main as cli
from forensics.data.manifest import read_manifest, write_manifest

from .conftest import CONFIGS, ROOT, TINY


def test_help_lists_the_steps():
    out = subprocess.run([sys.executable, "-m", "forensics", "refiner", "--help"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    for step in ("pretrain", "finetune", "apply"):
        assert step in out


def test_no_pairs_is_one_line_with_the_counts(refiner_manifest, stage1_run, tmp_path, capsys):
    df = read_manifest(refiner_manifest)
    df = df[df["method"] != "SelfReenact"]  # only cross-identity fakes left
    df["path"] = [str(refiner_manifest.parent / p) for p in df["path"]]
    manifest = tmp_path / "manifest.csv"
    write_manifest(df, manifest)
    status = cli(["refiner", "finetune", str(CONFIGS / "synth_finetune.yaml"), f"data.manifest={manifest}",
                  f"pretrained={stage1_run / 'checkpoints' / 'best.pt'}", f"output_dir={tmp_path / 'run'}",
                  "data.methods=null", *TINY])  # every fake method: FaceSwap is left
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1
    assert err[0].startswith(f"forensics refiner: error: {manifest}: no pairs can be formed from 64 fake crop(s) "
                             "in split 'train': 64 are cross-identity fakes a_b")
    assert not (tmp_path / "run" / "checkpoints").exists()
