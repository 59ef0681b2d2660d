"""Small video I/O on PyAV: H.264 encoding and sequential decoding.

FaceForensics++ (Rössler et al., "FaceForensics++: Learning to Detect Manipulated Facial
Images", ICCV 2019) distributes every video as H.264 compressed with libx264 at a constant
rate factor: ``c0``/``raw`` (CRF 0, lossless), ``c23`` (high quality) and ``c40`` (low
quality). :data:`COMPRESSIONS` maps those names to CRFs, and :func:`write_video` encodes the
same way, so synthetic data carries the same kind of compression artefacts as the real one.

Decoding is always sequential from the first frame: seeking in H.264 lands on key frames and
frame-accurate seeking is container dependent, so frame ``i`` is simply the ``i``-th decoded
frame. Only the requested frames are converted to RGB, which is where most of the time goes.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from forensics.atomic import atomic_path
from forensics.errors import ForensicsError

#: FaceForensics++ compression level -> libx264 constant rate factor.
COMPRESSIONS: dict[str, int] = {"c0": 0, "raw": 0, "c23": 23, "c40": 40}


def default_pix_fmt(crf: int) -> str:
    """The pixel format FaceForensics++-like videos use at ``crf``.

    Lossless (CRF 0) keeps full chroma (yuv444p) so that c0 is near-lossless in RGB too;
    lossy levels use yuv420p like the real datasets.
    """
    return "yuv444p" if crf == 0 else "yuv420p"


class VideoWriter:
    """Encode RGB (or grey) uint8 frames to an H.264 ``.mp4``, atomically.

    The file appears at ``path`` only when the ``with`` block exits without error; until then
    frames go to a temporary file in the same folder. Size is taken from the first frame.

    Example::

        with VideoWriter("out.mp4", fps=25, crf=23) as writer:
            for frame in frames:
                writer.write(frame)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: int,
        crf: int,
        pix_fmt: str | None = None,
        preset: str = "medium",
        threads: int | None = None,
        deterministic: bool = True,
    ) -> None:
        """Args:
        path: output file (``.mp4``).
        fps: frame rate.
        crf: libx264 constant rate factor (see :data:`COMPRESSIONS`).
        pix_fmt: encoder pixel format; default :func:`default_pix_fmt` of ``crf``.
        preset: libx264 speed preset.
        threads: encoder threads; ``None`` lets libx264 choose.
        deterministic: turn off libx264's macroblock-tree rate control (``mbtree=0``). With
            it on, the same frames encoded twice in one process gave different bytes and
            slightly different pixels (x264 via PyAV 18, also with one thread), which
            breaks "same seed, same dataset"; without it the output is repeatable.
        """
        if not 0 <= crf <= 51:
            raise ValueError(f"crf must be in [0, 51], got {crf}")
        self.path = Path(path)
        self.fps = int(fps)
        self.crf = int(crf)
        self.pix_fmt = pix_fmt or default_pix_fmt(crf)
        self.preset = preset
        self.threads = threads
        self.deterministic = deterministic
        self.num_frames = 0
        self._atomic: contextlib.AbstractContextManager[Path] | None = None
        self._tmp: Path | None = None
        self._container: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._shape: tuple[int, ...] | None = None

    def __enter__(self) -> VideoWriter:
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        return self

    def write(self, frame: np.ndarray) -> None:
        """Encode one frame: uint8 ``HxWx3`` RGB or ``HxW`` grey."""
        if self._tmp is None:
            raise RuntimeError("VideoWriter.write() outside its `with` block")
        if frame.dtype != np.uint8 or frame.ndim not in (2, 3) or (
            frame.ndim == 3 and frame.shape[2] != 3
        ):
            raise ValueError(f"expected uint8 HxWx3 or HxW frame, got {frame.dtype} {frame.shape}")
        if self._stream is None:
            self._open(frame.shape[1], frame.shape[0])
            self._shape = frame.shape
        elif frame.shape != self._shape:
            raise ValueError(f"frame shape {frame.shape} differs from the first {self._shape}")
        vframe = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(frame), format="rgb24" if frame.ndim == 3 else "gray"
        )
        vframe.pts = self.num_frames
        for packet in self._stream.encode(vframe):
            self._container.mux(packet)
        self.num_frames += 1

    def _open(self, width: int, height: int) -> None:
        if self.pix_fmt == "yuv420p" and (width % 2 or height % 2):
            raise ForensicsError(
                f"{self.path}: yuv420p needs an even frame size, got {width}x{height}"
            )
        self._container = av.open(str(self._tmp), mode="w", format="mp4")
        stream = self._container.add_stream("libx264", rate=Fraction(self.fps, 1))
        stream.width, stream.height, stream.pix_fmt = width, height, self.pix_fmt
        stream.time_base = Fraction(1, self.fps)
        options = {"crf": str(self.crf), "preset": self.preset}
        if self.threads is not None:
            options["threads"] = str(self.threads)
        if self.deterministic:
            options["x264-params"] = "mbtree=0"
        stream.options = options
        self._stream = stream

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._atomic is not None
        try:
            if self._container is not None:
                try:
                    if exc_type is None:
                        for packet in self._stream.encode(None):  # flush delayed frames
                            self._container.mux(packet)
                finally:
                    self._container.close()
            if exc_type is None and self.num_frames == 0:
                raise ValueError(f"no frames written to {self.path}")
        except BaseException:
            self._atomic.__exit__(*sys.exc_info())  # removes the temporary file
            raise
        self._atomic.__exit__(exc_type, exc, tb)  # renames it onto path, or removes it


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: int,
    crf: int,
    pix_fmt: str | None = None,
    preset: str = "medium",
    threads: int | None = None,
    deterministic: bool = True,
) -> int:
    """Encode ``frames`` (uint8 RGB ``HxWx3`` or grey ``HxW``) to H.264 at ``path``, atomically.

    The options are those of :class:`VideoWriter`.

    Returns:
        The number of frames written.
    """
    with VideoWriter(path, fps, crf, pix_fmt=pix_fmt, preset=preset, threads=threads,
                     deterministic=deterministic) as w:
        for frame in frames:
            w.write(frame)
    return w.num_frames


@contextlib.contextmanager
def _open_video(path: str | os.PathLike) -> Iterator[tuple[av.container.InputContainer, av.VideoStream]]:
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as e:
        raise ForensicsError(f"cannot open video {path}: {_reason(e)}") from e
    with container:
        if not container.streams.video:
            raise ForensicsError(f"no video stream in {path}")
        yield container, container.streams.video[0]


def _reason(e: BaseException) -> str:
    # FFmpeg errors repeat the file name; keep only the reason so the message stays one line.
    return getattr(e, "strerror", None) or str(e).splitlines()[0]


def video_info(path: str | os.PathLike) -> tuple[int, float, int, int]:
    """Return ``(num_frames, fps, width, height)`` of a video without decoding it.

    The frame count comes from the container header; where the header lacks it, packets are
    counted (demuxing only).
    """
    with _open_video(path) as (container, stream):
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        width, height = stream.codec_context.width, stream.codec_context.height
        num_frames = stream.frames
        if not num_frames:
            try:
                num_frames = sum(1 for p in container.demux(stream) if p.size)
            except av.FFmpegError as e:
                raise ForensicsError(f"cannot read video {path}: {_reason(e)}") from e
    return int(num_frames), fps, int(width), int(height)


def read_frames(
    path: str | os.PathLike, indices: Sequence[int] | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Decode a video sequentially, yielding ``(index, RGB uint8 HxWx3)`` in increasing order.

    Args:
        path: the video.
        indices: frame indices wanted (any order, duplicates ignored); ``None`` for all.
            Indices past the end of the video are silently not yielded.

    Raises:
        ForensicsError: the file can't be opened or decoded.
    """
    wanted = None if indices is None else set(int(i) for i in indices)
    if wanted is not None and not wanted:
        return
    last = None if wanted is None else max(wanted)
    with _open_video(path) as (container, stream):
        stream.thread_type = "AUTO"  # frame + slice threads: several times faster on H.264
        try:
            for i, frame in enumerate(container.decode(stream)):
                if wanted is None or i in wanted:
                    yield i, frame.to_ndarray(format="rgb24")
                if last is not None and i >= last:
                    break
        except av.FFmpegError as e:
            raise ForensicsError(f"cannot decode video {path}: {_reason(e)}") from e


def batches(frames: Iterable[tuple[int, np.ndarray]], size: int) -> Iterator[list[tuple[int, np.ndarray]]]:
    """Group ``(index, frame)`` pairs (e.g. of :func:`read_frames`) into lists of ``size`` (the last shorter)."""
    batch: list[tuple[int, np.ndarray]] = []
    for pair in frames:
        batch.append(pair)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
