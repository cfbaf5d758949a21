"""Video and audio steps of chute.transforms, through PyAV (FFmpeg)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from chute._transform_base import Compose, KeepFields, Transform, TransformError, _field, _into, _pair

_MEDIA_EXTRA = {"video": "pip install 'chute[video]'", "audio": "pip install 'chute[audio]'"}


def _start(start, length: float, needed: float, rng) -> float:
    """Seconds into a clip of `length` s where `needed` s of it begin."""
    if start == "begin":
        return 0.0
    if start == "random":
        return float(rng.uniform(0.0, max(0.0, length - needed)))
    if isinstance(start, (int, float)) and start >= 0:
        return float(start)
    raise ValueError(f"start={start!r}: use 'random', 'begin' or seconds (>= 0)")


class DecodeVideo(Transform):
    """Decodes ``num_frames`` frames of a video (any container and codec FFmpeg reads,
    through PyAV) to a uint8 array [T, C, H, W] (RGB).

    Args:
        fps: frames are taken every 1/fps s (None: consecutive frames at the video's rate).
        start: "random" (uniform over the starts that leave room for all frames), "begin",
            or seconds.
        size: None (as decoded), an int (the shorter side) or (height, width).
        ranged: in a raw dataset (chute.StreamingRawDataset), read the video object by
            byte ranges as FFmpeg asks for them — its index and the packets of the frames
            decoded, a small part of a long MP4 with its index at the front — instead of
            fetching it whole into the node cache first (better for short clips read every
            epoch). Unless an earlier step other than KeepFields sees the field.
    A clip shorter than asked repeats its last frame.
    """

    def __init__(self, field: str, num_frames: int, fps: float | None = None, start="random", size=None,
                 ranged: bool = True):
        if not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f"num_frames={num_frames!r} must be a positive int")
        if fps is not None and not fps > 0:
            raise ValueError(f"fps={fps!r} must be positive")
        _start(start, 0.0, 0.0, None) if start != "random" else None  # validated
        _pair(size, "size")
        _av("video")
        self.field, self.num_frames, self.fps, self.start, self.size = field, num_frames, fps, start, size
        self.ranged = ranged

    def ranged_fields(self) -> tuple:
        return (self.field,) if self.ranged else ()

    def fixed_output(self):
        if self.size is None or isinstance(self.size, int):
            return None
        h, w = _pair(self.size, "size")
        return self.field, (self.num_frames, 3, h, w), np.dtype(np.uint8)

    def apply(self, sample, rng, out=None):
        av = _av("video")
        data = _field(sample, self.field, "DecodeVideo")
        try:
            with av.open(_file(data)) as container:
                stream = _first(container.streams.video, "video", self.field)
                stream.thread_type = "AUTO"
                step = 1.0 / (self.fps or float(stream.average_rate or 25))
                length = float(stream.duration * stream.time_base) if stream.duration else (
                    container.duration / 1e6 if container.duration else 0.0)
                begin = _start(self.start, length, step * self.num_frames, rng)
                frame_s = 1.0 / float(stream.average_rate or 25)
                frames = self._frames(container, stream, begin, step, frame_s)
                if not frames and begin > 0:  # the duration was an estimate past the real end
                    frames = self._frames(container, stream, 0.0, step, frame_s)
        except av.FFmpegError as e:
            raise TransformError(f"field {self.field!r}: not a decodable video ({e})") from None
        if not frames:
            raise TransformError(f"field {self.field!r}: no frame in it")
        frames += [frames[-1]] * (self.num_frames - len(frames))
        return {**sample, self.field: _into(out, np.stack(frames).transpose(0, 3, 1, 2))}

    def _frames(self, container, stream, begin: float, step: float, frame_s: float) -> list:
        """Up to num_frames frames: the one showing at each of begin, begin + step, ...
        seconds into the stream (a frame repeats when steps are shorter than frames; the
        last one covers what is left). [] when the stream ends before `begin`."""
        origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        container.seek(int((origin + begin) / stream.time_base), stream=stream, backward=True, any_frame=False)
        frames, due, last = [], origin + begin, None  # last: (time, frame) showing until the next one
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base) if frame.pts is not None else (last[0] + frame_s if last else due)
            if last is not None:
                rgb = None
                while due < t - 1e-6 and len(frames) < self.num_frames:
                    rgb = rgb if rgb is not None else self._rgb(last[1])
                    frames.append(rgb)
                    due += step
                if len(frames) == self.num_frames:
                    return frames
            last = (t, frame)
        if last is not None and (frames or due < last[0] + frame_s):
            frames.append(self._rgb(last[1]))  # the caller repeats it to num_frames
        return frames

    def _rgb(self, frame):
        if self.size is None:
            return frame.to_ndarray(format="rgb24")
        if isinstance(self.size, int):
            scale = self.size / min(frame.width, frame.height)
            w, h = max(1, round(frame.width * scale)), max(1, round(frame.height * scale))
        else:
            h, w = _pair(self.size, "size")
        return frame.to_ndarray(format="rgb24", width=w, height=h)


class DecodeAudio(Transform):
    """Decodes audio (WAV, FLAC, MP3, ... through PyAV / FFmpeg) to float32 [C, N] at
    ``sample_rate``.

    Args:
        mono: mix down to one channel.
        duration: seconds to keep (padded with silence when shorter); None: all.
        start: "begin", "random" or seconds (with ``duration``).
    """

    def __init__(self, field: str, sample_rate: int, mono: bool = True, duration: float | None = None,
                 start="begin"):
        if not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ValueError(f"sample_rate={sample_rate!r} must be a positive int")
        if duration is not None and not duration > 0:
            raise ValueError(f"duration={duration!r} must be positive")
        _start(start, 0.0, 0.0, None) if start != "random" else None
        _av("audio")
        self.field, self.sample_rate, self.mono, self.duration, self.start = field, sample_rate, mono, duration, start

    def fixed_output(self):
        if self.duration is None or not self.mono:
            return None
        return self.field, (1, round(self.duration * self.sample_rate)), np.dtype(np.float32)

    def apply(self, sample, rng, out=None):
        av = _av("audio")
        data = _field(sample, self.field, "DecodeAudio")
        try:
            with av.open(_file(data)) as container:
                stream = _first(container.streams.audio, "audio", self.field)
                # Channels kept as they are (mono: their mean, below; FFmpeg's downmix
                # would scale a stereo signal by 1/sqrt(2) per channel).
                resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=self.sample_rate)
                pieces = [f.to_ndarray() for frame in container.decode(stream) for f in resampler.resample(frame)]
                pieces += [f.to_ndarray() for f in resampler.resample(None)]  # the resampler's tail
        except av.FFmpegError as e:
            raise TransformError(f"field {self.field!r}: not decodable audio ({e})") from None
        audio = np.concatenate(pieces, axis=1) if pieces else np.zeros((1, 0), np.float32)
        if self.mono and audio.shape[0] > 1:
            audio = audio.mean(axis=0, keepdims=True)
        if self.duration is not None:
            n = round(self.duration * self.sample_rate)
            first = round(_start(self.start, audio.shape[1] / self.sample_rate, self.duration, rng) * self.sample_rate)
            clip = audio[:, first:first + n]
            audio = np.zeros((audio.shape[0], n), np.float32)
            audio[:, :clip.shape[1]] = clip
        return {**sample, self.field: _into(out, np.ascontiguousarray(audio, dtype=np.float32))}


def video_pipeline(field: str, num_frames: int, resolution, *, fps: float | None = None, start="random",
                   keep: Sequence[str] | None = None) -> Compose:
    """The standard video preset: ``num_frames`` frames every 1/fps s from ``start``, resized
    to ``resolution`` ((height, width) or the shorter side), [T, C, H, W] uint8; then only
    ``keep`` fields (default: the video alone)."""
    return Compose([DecodeVideo(field, num_frames, fps=fps, start=start, size=resolution),
                    KeepFields(list(keep) if keep is not None else [field])])


def _file(data):
    """bytes as a file; a file (an object read by byte ranges) as it is."""
    return data if hasattr(data, "read") else io.BytesIO(data)


def _first(streams, kind: str, field: str):
    """The first stream of `kind` in a container, or a TransformError naming the field."""
    if not streams:
        raise TransformError(f"field {field!r}: no {kind} stream in it")
    return streams[0]


def _av(kind: str):
    try:
        import av
    except ImportError:
        raise ImportError(f"chute.transforms.Decode{kind.title()} needs PyAV (FFmpeg): {_MEDIA_EXTRA[kind]}") from None
    return av
