"""``forensics demo``: the whole pipeline on a synthetic dataset, offline, in minutes.

Stages, each the very command a user would type (the demo prints it), run in this process
through the same dispatcher::

    synth -> preprocess -> train -> evaluate (test split) -> predict (one real, one fake video)
    -> refiner pretrain -> refiner finetune -> refiner apply (the test split's SelfReenact fakes)
    -> evaluate the detector on refined fakes -> report (report.json + report.html)

The detector learns from the FaceSwap and SelfBlend fakes; the SelfReenact fakes
(self-reenactments, whose original frame is their pixel-aligned ground truth) are the
refiner's: it learns to turn them into their originals (Rössler et al., FaceForensics, 2018),
and the last evaluation shows the detector on those fakes before and after refinement.

Progress is recorded in ``OUT/demo.json``: an interrupted demo, run again, reuses the stages
already complete and says so. The demo is also the template for a real dataset: swap the
synth stage for FaceForensics++ on disk and keep the other commands.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

HELP = ("run the whole pipeline on a synthetic dataset (synth, preprocess, train, evaluate, predict, "
        "refiner, report)")
AFTER = "refiner"  # its place in `forensics --help`
#: Output folders the dispatcher checks before running (a file or a read-only folder: one line).
OUTPUT_DIRS = ("out",)
STATE = "demo.json"

#: Dataset and training sizes. The default must show a detector that learns (video AUC >= 0.9
#: on the test split: 6 reals, 12 fakes): many short videos, since what a detector must learn
#: is the forgery trace across identities, and 28 training identities generalise where 14
#: did not; --fast only has to show every stage working.
SIZES = {
    "default": dict(originals=40, seconds=1.2, width=640, height=480, frames=16, train=[], refiner=([], [])),
    "fast": dict(originals=6, seconds=1.2, width=320, height=240, frames=6,
                 train=["train.epochs=2", "data.frames_per_video=6", "train.log_every=1", "model.input_size=128"],
                 refiner=(["train.epochs=1"], ["train.epochs=6", "skips.input_ramp=8"])),
}
#: What the detector learns from and is scored on; SelfReenact is the refiner's (see above).
DETECTOR_METHODS = ["original", "FaceSwap", "SelfBlend"]
REFINED_METHOD = "SelfReenact"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo", help="output folder (default: ./demo)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to detect faces and train")
    parser.add_argument("--fast", action="store_true", help="a smaller dataset and shorter training (about a minute)")
    parser.add_argument("--overwrite", action="store_true", help="replace an output folder with other content")
    parser.add_argument("--seed", type=int, default=0)


@dataclass
class Stage:
    """One step of the demo: the command's arguments and the file that proves it finished."""

    name: str
    argv: list[str]
    done_file: Path


def _config_dir() -> Path:
    from forensics.errors import ForensicsError

    configs = Path(__file__).resolve().parent.parent / "configs"
    if not (configs / "demo.yaml").is_file():
        raise ForensicsError(f"{configs / 'demo.yaml'}: not found; run the demo from a source checkout "
                             "(pip install -e .)")
    return configs


def plan(out: Path, device: str, fast: bool, seed: int) -> list[Stage]:
    """The demo's stages for output folder ``out``."""
    size = SIZES["fast" if fast else "default"]
    synth, crops, run = out / "synth", out / "crops", out / "run"
    manifest = crops / "manifest.csv"
    best = run / "checkpoints" / "best.pt"
    evaluation = out / "eval"
    wandb_mode = _wandb_mode()
    real, fake = _test_videos(synth, size["originals"])
    common = [f"data.manifest={manifest}", f"device={device}", f"seed={seed}", f"wandb.mode={wandb_mode}"]
    return [
        Stage("synth", ["synth", "--out", str(synth), "--seed", str(seed), "--originals", str(size["originals"]),
                        "--seconds", str(size["seconds"]), "--width", str(size["width"]),
                        "--height", str(size["height"]), "--methods", *DETECTOR_METHODS[1:], REFINED_METHOD],
              synth / "synth.json"),
        Stage("preprocess", ["preprocess", "--layout", "ffpp", "--root", str(synth), "--out", str(crops),
                             "--frames", str(size["frames"]), "--device", device], manifest),
        Stage("train", ["train", str(_config_dir() / "demo.yaml"), *common, f"output_dir={run}",
                        f"data.methods=[{','.join(DETECTOR_METHODS)}]", *size["train"]], run / "report.json"),
        Stage("evaluate", ["evaluate", "--checkpoint", str(best), "--split", "test", "--out", str(evaluation),
                           "--methods", *DETECTOR_METHODS, "--device", device, "--wandb-mode", wandb_mode],
              evaluation / "report.json"),
        Stage("predict", ["predict", "--checkpoint", str(best), str(real), str(fake), "--device", device,
                          "--csv", str(out / "predict" / "frames.csv"), "--annotate", str(out / "predict")],
              out / "predict" / "frames.csv"),
        *_refiner_stages(out, manifest, device, size, common, best, wandb_mode),
    ]


def _refiner_stages(out: Path, manifest: Path, device: str, size: dict, common: list[str], detector: Path,
                    wandb_mode: str) -> list[Stage]:
    """Pretrain, fine-tune, apply to the test split's SelfReenact fakes, score them with the detector."""
    configs = _config_dir() / "refiner"
    ae, refiner = out / "refiner_ae", out / "refiner"
    refined = manifest.parent / f"manifest_{REFINED_METHOD}-refined.csv"  # apply's default --out
    evaluation = out / "eval_refined"
    pretrain, finetune = size["refiner"]
    return [
        Stage("refiner pretrain", ["refiner", "pretrain", str(configs / "demo_pretrain.yaml"), *common,
                                   f"output_dir={ae}", *pretrain], ae / "report.json"),
        Stage("refiner finetune", ["refiner", "finetune", str(configs / "demo_finetune.yaml"), *common,
                                   f"pretrained={ae / 'checkpoints' / 'best.pt'}", f"output_dir={refiner}",
                                   *finetune], refiner / "report.json"),
        Stage("refiner apply", ["refiner", "apply", "--checkpoint", str(refiner / "checkpoints" / "best.pt"),
                                "--manifest", str(manifest), "--method", REFINED_METHOD,
                                "--splits", "test", "--device", device], refined),
        Stage("evaluate refined", ["evaluate", "--checkpoint", str(detector), "--manifest", str(refined),
                                   "--split", "test", "--methods", "original", REFINED_METHOD,
                                   f"{REFINED_METHOD}-refined", "--out", str(evaluation), "--device", device,
                                   "--wandb-mode", wandb_mode], evaluation / "report.json"),
    ]


def _wandb_mode() -> str:
    from forensics.training.runlog import resolve_mode

    return resolve_mode(None)  # offline unless the user configured an API key


def _test_videos(synth: Path, originals: int) -> tuple[Path, Path]:
    """One real and one fake (FaceSwap) video of the test split."""
    from forensics.synth import fake_path, original_path, split_pairs

    a, b = split_pairs(originals)["test"][0]
    return original_path(synth, "c23", a), fake_path(synth, "FaceSwap", "c23", a, b)


def _load_state(out: Path, settings: dict, overwrite: bool) -> dict:
    from forensics.errors import ForensicsError

    state_file = out / STATE
    if state_file.is_file():
        state = json.loads(state_file.read_text())
        if state.get("settings") == settings:
            return state
        if not overwrite:
            raise ForensicsError(f"{out}: holds a demo run with other settings ({state.get('settings')}); "
                                 "use --overwrite or another --out")
    elif out.exists() and any(out.iterdir()) and not overwrite:
        raise ForensicsError(f"{out}: folder is not empty and is not a demo output; use --overwrite or another --out")
    if out.exists() and overwrite:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return {"settings": settings, "done": []}


def _save_state(out: Path, state: dict) -> None:
    from forensics.atomic import atomic_write_text

    atomic_write_text(out / STATE, json.dumps(state, indent=2) + "\n")


def _command(argv: list[str]) -> str:
    return "forensics " + " ".join(shlex.quote(a) for a in argv)


def run(args: argparse.Namespace) -> int:
    from forensics.cli import main as forensics_main
    from forensics.errors import ForensicsError
    from pipeline_demo.report import write_report

    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ForensicsError("--device cuda: no CUDA GPU is available here (use --device cpu)")
    out = Path(args.out)
    settings = {"fast": args.fast, "seed": args.seed, "device": args.device}
    state = _load_state(out, settings, args.overwrite)
    stages = plan(out, args.device, args.fast, args.seed)
    timings: dict[str, float] = dict(state.get("seconds", {}))
    for i, stage in enumerate(stages, 1):
        header = f"[{i}/{len(stages) + 1}] {stage.name}"
        if stage.name in state["done"] and stage.done_file.exists():
            print(f"{header}: already complete, reusing {stage.done_file.parent}", flush=True)
            continue
        print(f"{header}: {_command(stage.argv)}", flush=True)
        start = time.perf_counter()
        status = forensics_main(stage.argv)
        if status != 0:
            print(f"demo stopped: stage '{stage.name}' exited with status {status}", file=sys.stderr)
            return status
        timings[stage.name] = round(time.perf_counter() - start, 1)
        state["done"].append(stage.name)
        state["seconds"] = timings
        _save_state(out, state)
    print(f"[{len(stages) + 1}/{len(stages) + 1}] report", flush=True)
    report = write_report(out, timings=timings)
    _print_summary(out, report)
    return 0


def _print_summary(out: Path, report: dict) -> None:
    video, frame = report["test"]["video"], report["test"]["frame"]

    def fmt(x):
        return "undefined" if x is None else f"{x:.3f}"

    print(f"\ntest split: video-level AUC {fmt(video['auc'])}, accuracy {fmt(video['acc'])} "
          f"(balanced {fmt(video.get('bal_acc'))}, {video['n']} videos); frame-level AUC {fmt(frame['auc'])}, "
          f"accuracy {fmt(frame['acc'])} (balanced {fmt(frame.get('bal_acc'))}, {frame['n']} crops)")
    refiner = report.get("refiner")
    if refiner:
        caught = ", ".join(f"{method} {fmt(d['frames_caught'])}" for method, d in refiner["detector"].items())
        print(f"refiner: test pairs PSNR {refiner['input']['psnr']:.2f} -> {refiner['output']['psnr']:.2f} dB "
              f"({refiner['gain']['psnr']:+.2f} dB closer to the originals); frames the detector calls fake: {caught}")
    print(f"report: {out / 'report.html'} (open it in a browser) and {out / 'report.json'}")
    print(f"annotated videos: {out / 'predict'}")
    runs = sorted(str(p) for p in out.glob("**/wandb/offline-run-*"))
    if runs:
        print(f"W&B runs were logged offline; to upload them: wandb sync {' '.join(runs)}")
