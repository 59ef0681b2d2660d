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

``--explain OUT`` shows why (:mod:`forensics.training.gradcam`, :mod:`forensics.training.explain`):
per video, ``OUT/NAME.mp4`` with the Grad-CAM heat map of the fake evidence blended into the
face, ``OUT/NAME_frames.png`` with the most and least fake frames (crop | heat map) and
``OUT/NAME_scores.png`` with the fake probability over time (also logged to W&B when a run is
active in the process).
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
    parser.add_argument("--explain", metavar="OUT", help="write Grad-CAM videos, frame strips and score-over-time "
                                                         "plots into OUT")
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

    def score_video(self, path: str | os.PathLike, explain: bool = False) -> dict:
        """Fake probability of one video.

        Args:
            path: the video.
            explain: also return the crops and their Grad-CAM maps.

        Returns:
            ``score`` (``None`` when no face is found), ``frames`` (scored), ``sampled``,
            ``per_frame``: ``{frame: (x0, y0, x1, y1, score)}``, ``fps``, and with ``explain``
            ``crops`` and ``cams``: ``{frame: HxWx3 uint8}``, ``{frame: HxW float in 0..1}``.
        """
        import numpy as np
        import torch

        from forensics.media.crops import crop_face
        from forensics.media.faces import subject_boxes
        from forensics.media.sampling import sample_indices
        from forensics.media.shots import frame_signature, shot_starts
        from forensics.media.video import read_frames, video_info

        num_frames, fps = video_info(path)[:2]
        indices = sample_indices(num_frames, "even", self.frames)
        frames = dict(read_frames(path, indices))
        order = sorted(frames)
        detections = dict(zip(order, self.detector.detect([frames[i] for i in order]))) if order else {}
        # Tracks end at shot cuts, as in preprocessing: a video's score never mixes two people.
        boxes = subject_boxes(detections, shot_starts({i: frame_signature(frames[i]) for i in order}))
        per_frame: dict[int, tuple] = {}
        result: dict = {"crops": {}, "cams": {}} if explain else {}
        if boxes:
            kept = sorted(boxes)
            faces = [crop_face(frames[i], boxes[i][:4], self.crop_size, self.crop_scale) for i in kept]
            crops = [self.transform(torch.from_numpy(face).permute(2, 0, 1)) for face in faces]
            with torch.no_grad():
                batch = self.prepare({"image": torch.stack(crops)})
                scores = self.task.fake_score(self.model(batch["image"])).cpu().numpy()
            per_frame = {i: (*map(float, boxes[i][:4]), float(s)) for i, s in zip(kept, scores)}
            if explain:
                result = {"crops": dict(zip(kept, faces)), "cams": dict(zip(kept, self.gradcam(faces)))}
        score = self.aggregate(np.array([v[4] for v in per_frame.values()])) if per_frame else None
        return {"score": score, "frames": len(per_frame), "sampled": len(order), "per_frame": per_frame,
                "fps": fps or 25.0, **result}

    @property
    def gradcam(self):
        """Grad-CAM maps of this model (built on first use)."""
        if getattr(self, "_gradcam", None) is None:
            from forensics.training.gradcam import GradCam

            self._gradcam = GradCam(self.model, self.task, self.transform, self.prepare)
        return self._gradcam


def annotate(path: str | os.PathLike, per_frame: dict, out: str | os.PathLike, threshold: float = 0.5,
             cams: dict | None = None, crop_scale: float | None = None) -> None:
    """Copy of the video with the face box coloured by score (each frame shows the box and
    score of the nearest sampled frame) and, given ``cams``, that frame's Grad-CAM heat map
    blended into the face (``crop_scale``: the crop rule's scale the maps were made at)."""
    import bisect

    import cv2

    from forensics.media.crops import CROP_SCALE
    from forensics.media.video import VideoWriter, read_frames, video_info
    from forensics.media.heatmap import blend_into_frame

    fps = video_info(path)[1] or 25.0
    keys = sorted(per_frame)
    with VideoWriter(out, fps=round(fps), crf=18) as writer:
        for index, frame in read_frames(path):
            frame = frame.copy()
            if keys:
                j = bisect.bisect_left(keys, index)
                near = min(keys[max(0, j - 1):j + 1], key=lambda k: abs(k - index))
                x0, y0, x1, y1, score = per_frame[near]
                if cams:
                    blend_into_frame(frame, cams[near], (x0, y0, x1, y1), crop_scale or CROP_SCALE)
                colour = (int(255 * score), int(255 * (1 - score)), 0)  # RGB: green real -> red fake
                cv2.rectangle(frame, (int(x0), int(y0)), (int(x1), int(y1)), colour, 2)
                label = f"{'FAKE' if score >= threshold else 'real'} {score:.2f}"
                cv2.putText(frame, label, (int(x0), max(12, int(y0) - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1,
                            cv2.LINE_AA)
            else:
                cv2.putText(frame, "no face", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 0), 1, cv2.LINE_AA)
            writer.write(frame)


def explain(video: Path, result: dict, out: Path, threshold: float, crop_scale: float) -> dict[str, Path]:
    """The ``--explain`` files of one scored video (see the module docstring); returns them by kind."""
    from forensics.training.explain import log_to_active_run, save_frame_strip, save_score_plot

    files = {"video": out / f"{video.stem}.mp4"}
    annotate(video, result["per_frame"], files["video"], threshold, cams=result["cams"], crop_scale=crop_scale)
    if not result["per_frame"]:  # no face: nothing to plot
        return files
    scores = {i: v[4] for i, v in result["per_frame"].items()}
    files["scores"] = out / f"{video.stem}_scores.png"
    save_score_plot(scores, files["scores"], fps=result["fps"], threshold=threshold, video_score=result["score"],
                    title=f"{video.name}: p(fake) per frame")
    files["frames"] = out / f"{video.stem}_frames.png"
    save_frame_strip(result["crops"], result["cams"], scores, files["frames"],
                     title=f"{video.name}: where the detector sees the forgery (Grad-CAM)")
    log_to_active_run(video.stem, {k: v for k, v in files.items() if k != "video"}, scores, result["fps"])
    return files


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
            result = predictor.score_video(video, explain=bool(args.explain))
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
        if args.explain:
            explain(video, result, Path(args.explain), args.threshold, predictor.crop_scale)
    with atomic_path(args.csv) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["video", "frame", "x0", "y0", "x1", "y1", "score"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"per-frame scores: {args.csv}" + (f"; annotated videos: {args.annotate}" if args.annotate else "")
          + (f"; explanations: {args.explain}" if args.explain else ""))
    return 1 if failed else 0
