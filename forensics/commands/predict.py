"""``forensics predict --checkpoint C VIDEO_OR_FOLDER ...``: is this video fake?

Each video goes through the preprocessing face pipeline with the settings the training crops
were made with (stored in the checkpoint): N evenly spaced frames, MTCNN on them, the
subject's box tracked across frames, the FaceForensics++ crop rule, then the model with the
input size and normalisation it was trained with. One line per video::

    videos/000.mp4    fake probability 0.0312  REAL  32/32 frames

The video's probability is aggregated from its frames' as in evaluation (mean by default).
A video where no face is found says ``no face``: there is no score to give, and 0.5 would be
a lie. Per-frame scores go to a CSV; ``--annotate OUT`` writes a copy of each video with the
face box coloured from green (real) to red (fake) and the frame's score.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

HELP = "score videos with a trained detector (fake probability per video and per frame)"
#: Output folders the dispatcher checks before running (a file or a read-only folder: one line).
OUTPUT_DIRS = ("annotate",)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def add_arguments(parser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="VIDEO_OR_FOLDER", help="videos, or folders searched for videos")
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by forensics train")
    parser.add_argument("--csv", default="predictions.csv", help="per-frame scores (default: predictions.csv)")
    parser.add_argument("--annotate", metavar="OUT", help="write annotated copies of the videos into OUT")
    parser.add_argument("--frames", type=int, help="frames per video (default: as in preprocessing, else 32)")
    parser.add_argument("--threshold", type=float, default=0.5, help="FAKE at or above this probability")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")


def find_videos(inputs: list[str]) -> list[Path]:
    """The videos named, and those found (recursively, sorted) in the folders named."""
    from forensics.errors import ForensicsError

    videos: list[Path] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
            if not found:
                raise ForensicsError(f"{path}: no video files ({', '.join(VIDEO_SUFFIXES)}) in this folder")
            videos += found
        elif path.is_file():
            videos.append(path)
        else:
            raise ForensicsError(f"{path}: no such file or folder")
    return videos


class Predictor:
    """A checkpoint's model with the face pipeline it was trained behind.

    Args:
        checkpoint: path of a checkpoint written by ``forensics train``.
        device: ``cpu``, ``cuda``...
        frames: frames per video (default: the preprocessing setting, else 32).
    """

    def __init__(self, checkpoint: str | os.PathLike, device: str = "cpu", frames: int | None = None) -> None:
        from forensics.training.checkpoint import load_checkpoint, load_weights
        from forensics.media.crops import CROP_SCALE, CROP_SIZE
        from forensics.errors import ForensicsError
        from forensics.media.faces import MIN_SCORE, THRESHOLDS, FaceDetector
        from forensics.training.metrics import VIDEO_STRATEGIES
        from forensics.models import create_model
        from forensics.training.tasks import create_task, task_spec
        from forensics.data.transforms import batch_preparer, build_transform

        state = load_checkpoint(checkpoint)
        info = state.get("model_info")
        if not info:
            raise ForensicsError(f"{checkpoint}: no model_info: not written by forensics train")
        if not task_spec(info["task"]).detector:
            raise ForensicsError(f"{checkpoint}: a {info['task']} model, not a detector: score it with forensics evaluate")
        self.model = create_model(info["name"], num_classes=info["num_classes"], in_chans=info.get("in_chans"),
                                  drop_rate=info.get("drop_rate"), img_size=info.get("img_size"))
        load_weights(self.model, state, str(checkpoint))
        self.model.to(device).eval()
        self.task = create_task(info["task"], info["classes"])
        self.aggregate = VIDEO_STRATEGIES[info.get("video_strategy", "mean")]
        pre = info.get("preprocess") or {}
        self.crop_size = int(pre.get("crop_size", CROP_SIZE))
        self.crop_scale = float(pre.get("crop_scale", CROP_SCALE))
        self.frames = frames or int(pre.get("frames", 32))
        self.transform = build_transform(info["data_config"], None, self.crop_size)
        self.prepare = batch_preparer(info["data_config"], device)
        self.detector = FaceDetector(device=device, min_face_size=pre.get("min_face_size"),
                                     thresholds=pre.get("thresholds", THRESHOLDS),
                                     min_score=pre.get("min_score", MIN_SCORE))

    def score_video(self, path: str | os.PathLike) -> dict:
        """Fake probability of one video.

        Returns:
            ``score`` (``None`` when no face is found), ``frames`` (scored), ``sampled``,
            and ``per_frame``: ``{frame: (x0, y0, x1, y1, score)}``.
        """
        import numpy as np
        import torch

        from forensics.media.crops import crop_face
        from forensics.media.faces import subject_boxes
        from forensics.media.sampling import sample_indices
        from forensics.media.shots import frame_signature, shot_starts
        from forensics.media.video import read_frames, video_info

        num_frames = video_info(path)[0]
        indices = sample_indices(num_frames, "even", self.frames)
        frames = dict(read_frames(path, indices))
        order = sorted(frames)
        detections = dict(zip(order, self.detector.detect([frames[i] for i in order]))) if order else {}
        # Tracks end at shot cuts, as in preprocessing: a video's score never mixes two people.
        boxes = subject_boxes(detections, shot_starts({i: frame_signature(frames[i]) for i in order}))
        per_frame: dict[int, tuple] = {}
        if boxes:
            kept = sorted(boxes)
            crops = [self.transform(torch.from_numpy(crop_face(frames[i], boxes[i][:4], self.crop_size,
                                                               self.crop_scale)).permute(2, 0, 1)) for i in kept]
            with torch.no_grad():
                batch = self.prepare({"image": torch.stack(crops)})
                scores = self.task.fake_score(self.model(batch["image"])).cpu().numpy()
            per_frame = {i: (*map(float, boxes[i][:4]), float(s)) for i, s in zip(kept, scores)}
        score = self.aggregate(np.array([v[4] for v in per_frame.values()])) if per_frame else None
        return {"score": score, "frames": len(per_frame), "sampled": len(order), "per_frame": per_frame}


def annotate(path: str | os.PathLike, per_frame: dict, out: str | os.PathLike, threshold: float = 0.5) -> None:
    """Copy of the video with the face box coloured by score (each frame shows the box and
    score of the nearest sampled frame)."""
    import bisect

    import cv2

    from forensics.media.video import VideoWriter, read_frames, video_info

    fps = video_info(path)[1] or 25.0
    keys = sorted(per_frame)
    with VideoWriter(out, fps=round(fps), crf=18) as writer:
        for index, frame in read_frames(path):
            frame = frame.copy()
            if keys:
                j = bisect.bisect_left(keys, index)
                near = min(keys[max(0, j - 1):j + 1], key=lambda k: abs(k - index))
                x0, y0, x1, y1, score = per_frame[near]
                colour = (int(255 * score), int(255 * (1 - score)), 0)  # RGB: green real -> red fake
                cv2.rectangle(frame, (int(x0), int(y0)), (int(x1), int(y1)), colour, 2)
                label = f"{'FAKE' if score >= threshold else 'real'} {score:.2f}"
                cv2.putText(frame, label, (int(x0), max(12, int(y0) - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1,
                            cv2.LINE_AA)
            else:
                cv2.putText(frame, "no face", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 0), 1, cv2.LINE_AA)
            writer.write(frame)


def run(args) -> int:
    import csv

    from forensics.atomic import atomic_path
    from forensics.errors import ForensicsError
    from forensics.training.session import resolve_device

    videos = find_videos(args.inputs)
    device = resolve_device(args.device, 0)
    predictor = Predictor(args.checkpoint, str(device), args.frames)
    rows, failed = [], 0
    width = max(len(str(v)) for v in videos)
    for video in videos:
        try:
            result = predictor.score_video(video)
        except ForensicsError as error:  # an unreadable video: say so, go on with the others
            print(f"{str(video):<{width}}  error: {error}")
            failed += 1
            continue
        frames = f"{result['frames']}/{result['sampled']} frames"
        if result["score"] is None:
            print(f"{str(video):<{width}}  no face               {frames}")
        else:
            label = "FAKE" if result["score"] >= args.threshold else "REAL"
            print(f"{str(video):<{width}}  fake probability {result['score']:.4f}  {label}  {frames}")
        rows += [{"video": str(video), "frame": i, "x0": b[0], "y0": b[1], "x1": b[2], "y1": b[3], "score": b[4]}
                 for i, b in sorted(result["per_frame"].items())]
        rows.append({"video": str(video), "frame": "video", "score": result["score"] if result["score"] is not None
                     else "no face"})
        if args.annotate:
            out = Path(args.annotate) / f"{video.stem}.mp4"
            annotate(video, result["per_frame"], out, args.threshold)
    with atomic_path(args.csv) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["video", "frame", "x0", "y0", "x1", "y1", "score"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"per-frame scores: {args.csv}" + (f"; annotated videos: {args.annotate}" if args.annotate else ""))
    return 1 if failed else 0
