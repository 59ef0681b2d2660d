"""Pretrained weights without internet: one line naming both workflows when they are missing,
the compute-node half of the cache workflow (``HF_HUB_OFFLINE=1`` reads the filled cache), and
weights files that don't fit named by their first mismatching tensor.

No test reaches the network: the Hub endpoint is a closed local port and ``HF_HOME`` an empty
folder, so the failures are the real ones of an offline node, not mocks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from forensics.errors import ForensicsError
from forensics.models import create_model

ROOT = Path(__file__).resolve().parents[2]
NAME = "mobilenetv3_small_050"
REPO = "timm/mobilenetv3_small_050.lamb_in1k"  # timm's hf_hub_id for NAME's default weights


def offline_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment whose Hugging Face Hub is unreachable and whose caches are in ``home``."""
    env = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper()}
    return env | {"HF_HOME": str(home), "TORCH_HOME": str(home / "torch"), "HF_ENDPOINT": "http://127.0.0.1:1",
                  "PYTHONPATH": str(ROOT)} | extra


def forensics(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "forensics", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_pretrained_without_network_is_one_line_naming_both_workflows(crop_manifest, tmp_path):
    proc = forensics("train", str(ROOT / "configs" / "demo.yaml"), f"data.manifest={crop_manifest}",
                     f"output_dir={tmp_path / 'run'}", "model.pretrained=true", "wandb.mode=disabled",
                     env=offline_env(tmp_path / "hf"))
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(f"forensics train: error: model '{NAME}': pretrained weights not cached")
    assert "127.0.0.1:1" in line and "model.pretrained_file=PATH" in line
    assert f"`forensics weights {NAME}`" in line and "HF_HUB_OFFLINE=1" in line
    assert "Traceback" not in proc.stderr and "Retrying" not in proc.stderr

    # HF_HUB_OFFLINE=1 with an empty cache (`forensics weights` on a node without internet):
    # named too, without any connection attempt.
    proc = forensics("weights", NAME, env=offline_env(tmp_path / "hf", HF_HUB_OFFLINE="1"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "are not in the Hugging Face cache" in proc.stderr and "HF_HUB_OFFLINE is set" in proc.stderr


def fill_hub_cache(home: Path, state_dict: dict) -> Path:
    """The cache a login node's ``forensics weights`` leaves (the Hub's documented layout:
    ``hub/models--ORG--NAME/{refs/main, snapshots/COMMIT/FILE}``), with our own weights."""
    from safetensors.torch import save_file

    repo = home / "hub" / f"models--{REPO.replace('/', '--')}"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    path = repo / "snapshots" / commit / "model.safetensors"
    path.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path))
    return path


def test_compute_node_reads_the_filled_cache_offline(tmp_path):
    torch.manual_seed(3)
    imagenet = create_model(NAME, num_classes=1000).state_dict()
    cached = fill_hub_cache(tmp_path / "hf", imagenet)
    torch.save(imagenet["conv_stem.weight"], tmp_path / "stem.pt")
    script = ("import sys, torch; from forensics.cli import main; from forensics.models import create_model\n"
              f"assert main(['weights', '{NAME}']) == 0\n"
              f"model = create_model('{NAME}', num_classes=1, pretrained=True)\n"
              f"assert torch.equal(model.conv_stem.weight, torch.load(sys.argv[1], weights_only=True))\n")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "stem.pt")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=offline_env(tmp_path / "hf", HF_HUB_OFFLINE="1"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == f"{NAME}: {cached}"  # `forensics weights` finds it, offline


@pytest.mark.parametrize("other, first", [
    ("mobilenetv3_small_075", "tensor blocks.0.0.conv_pw.weight has shape [16, 16, 1, 1] in the file, "
                              "[8, 16, 1, 1] in the model"),
    ("resnet18", "tensor bn1.weight has shape [64] in the file, [16] in the model")])
def test_weights_file_that_does_not_fit_names_the_first_tensor(tmp_path, other, first):
    path = tmp_path / f"{other}.pth"
    torch.save(create_model(other, num_classes=1000).state_dict(), path)
    with pytest.raises(ForensicsError) as error:
        create_model(NAME, pretrained_file=path)
    assert str(error.value) == f"{path}: pretrained weights don't fit {NAME}: {first}"


def test_first_mismatch_reads_missing_and_unexpected_keys():
    from forensics.weights import first_mismatch

    model = torch.nn.Linear(2, 2)
    with pytest.raises(RuntimeError) as error:
        model.load_state_dict({"weight": torch.zeros(2, 2), "scale": torch.zeros(1)})
    assert first_mismatch(error.value) == "tensor bias is missing from the file"
    with pytest.raises(RuntimeError) as error:
        model.load_state_dict({"weight": torch.zeros(2, 2), "bias": torch.zeros(2), "scale": torch.zeros(1)})
    assert first_mismatch(error.value) == "the file has tensor scale, which the model has not"
