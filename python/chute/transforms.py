"""Decoding and field presets for chute datasets: image, video, audio and text.

Each transform is a picklable callable on a sample dict; a list of them (or
:class:`Compose`) is one transform. Given as a dataset's ``transform``, they run on a pool
of threads — the decoders (Pillow, FFmpeg through PyAV) release the GIL — several samples
at a time, and when every step of a dataset's transform is one of these,
:class:`chute.StreamingDataLoader` builds batches with threads of the training process
instead of worker processes, fixed-shape outputs written straight into the batch tensor.

Randomness (crops, flips, start frames) is drawn from a generator seeded by (dataset seed,
epoch, sample id): a resumed run, and any cluster layout, augment each sample the same way.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence

import numpy as np

_IMAGE_EXTRA = "pip install 'chute[image]'"
_MEDIA_EXTRA = {"video": "pip install 'chute[video]'", "audio": "pip install 'chute[audio]'"}


class TransformError(ValueError):
    """A sample's field could not be decoded (the message names the field and why)."""


class Transform:
    """A step on a sample dict. ``apply(sample, rng, out)`` does the work: ``rng`` is the
    sample's generator (see the module docstring) and ``out`` a writable array for the
    field whose shape :meth:`fixed_output` announced, or None. Calling a transform directly
    uses a generator seeded with 0."""

    def apply(self, sample: dict, rng: np.random.Generator, out=None) -> dict:
        raise NotImplementedError

    def fixed_output(self):
        """(field, shape, numpy dtype) of the field this step outputs when every sample
        gives the same shape, else None."""
        return None

    def __call__(self, sample: dict) -> dict:
        return self.apply(sample, np.random.default_rng(0))


class Compose(Transform):
    """Transforms applied in turn."""

    def __init__(self, transforms: Sequence[Transform]):
        self.transforms = [t for step in transforms for t in (step.transforms if isinstance(step, Compose) else [step])]
        for t in self.transforms:
            if not isinstance(t, Transform):
                raise TypeError(f"{t!r} is not a chute.transforms transform: wrap your own steps in a function and "
                                "give that as the dataset's transform")

    def apply(self, sample, rng, out=None):
        last = self._last_fixed()
        for k, t in enumerate(self.transforms):
            sample = t.apply(sample, rng, out if k == last else None)
        return sample

    def _last_fixed(self):
        """The index of the step whose fixed output the batch holds (the last step that
        produces that field, and nothing after it touches it), or None."""
        for k in range(len(self.transforms) - 1, -1, -1):
            fixed = self.transforms[k].fixed_output()
            if fixed is not None:
                field = fixed[0]
                later = self.transforms[k + 1:]
                if all(isinstance(t, KeepFields) and field in t.fields for t in later):
                    return k
                return None
        return None

    def fixed_output(self):
        k = self._last_fixed()
        return None if k is None else self.transforms[k].fixed_output()


def as_transform(transform) -> Transform | None:
    """`transform` as one chute Transform if it is made only of them (a list or a
    Compose), else None (a user's function)."""
    if isinstance(transform, Transform):
        return transform
    if isinstance(transform, (list, tuple)) and transform and all(isinstance(t, Transform) for t in transform):
        return Compose(transform)
    return None


def _field(sample, field, who):
    try:
        return sample[field]
    except KeyError:
        raise TransformError(f"{who}: the sample has no field {field!r} (its fields: {sorted(sample)})") from None


def _pair(size, what):
    if size is None:
        return None
    def positive(s):
        return isinstance(s, int) and not isinstance(s, bool) and s > 0

    if positive(size):
        return size, size
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(positive(s) for s in size):
        return tuple(size)
    raise ValueError(f"{what}={size!r}: use a positive int or (height, width)")


class DecodeImage(Transform):
    """Decodes an encoded image (JPEG, PNG, WebP, ...) in field ``field`` to an array.

    Args:
        size: None (as decoded), an int or (height, width).
        resize: "shorter": the shorter side becomes ``size`` (an int), keeping the aspect;
            "exact": resized to (height, width); "crop": resized to cover (height, width),
            then cropped to it.
        crop: where "crop" cuts: "center" or "random".
        flip: the probability of a horizontal flip.
        dtype: "uint8", or "float32" (scaled to [0, 1], then normalized if asked).
        normalize: (mean, std) per channel, for float32.
        layout: "CHW" or "HWC".

    JPEGs are decoded at 1/2, 1/4 or 1/8 scale by the decoder itself (libjpeg's DCT
    scaling) when the target is at most that fraction of the source.
    """

    def __init__(self, field: str, size=None, mode: str = "RGB", resize: str = "shorter", crop: str = "center",
                 flip: float = 0.0, dtype: str = "uint8", normalize=None, layout: str = "CHW"):
        if resize not in ("shorter", "exact", "crop"):
            raise ValueError(f"resize={resize!r}: use 'shorter', 'exact' or 'crop'")
        if crop not in ("center", "random"):
            raise ValueError(f"crop={crop!r}: use 'center' or 'random'")
        if dtype not in ("uint8", "float32"):
            raise ValueError(f"dtype={dtype!r}: use 'uint8' or 'float32'")
        if layout not in ("CHW", "HWC"):
            raise ValueError(f"layout={layout!r}: use 'CHW' or 'HWC'")
        if normalize is not None and dtype != "float32":
            raise ValueError("normalize= needs dtype='float32'")
        if resize == "shorter" and size is not None and not isinstance(size, int):
            raise ValueError(f"resize='shorter' takes an int size, not {size!r} (use resize='exact' or 'crop')")
        if not 0.0 <= flip <= 1.0:
            raise ValueError(f"flip={flip!r} must be a probability")
        _pair(size, "size")
        _pil()  # the extra is there
        self.field, self.size, self.mode, self.resize, self.crop = field, size, mode, resize, crop
        self.flip, self.dtype, self.layout = flip, dtype, layout
        self.normalize = None if normalize is None else tuple(np.asarray(v, np.float32) for v in normalize)

    def fixed_output(self):
        if self.size is None or self.resize == "shorter":
            return None
        h, w = _pair(self.size, "size")
        channels = {"L": 1, "RGB": 3, "RGBA": 4}.get(self.mode)
        if channels is None:
            return None
        shape = (channels, h, w) if self.layout == "CHW" else (h, w, channels)
        return self.field, shape, np.dtype(self.dtype)

    def apply(self, sample, rng, out=None):
        Image = _pil()
        data = _field(sample, self.field, "DecodeImage")
        try:
            img = Image.open(io.BytesIO(data))
            target = self._target(img.size)
            if target is not None and img.format == "JPEG":
                img.draft(self.mode, target)  # DCT scaling: the decoder reads fewer pixels
            img = img.convert(self.mode) if img.mode != self.mode else img
            img.load()
        except Exception as e:
            raise TransformError(f"field {self.field!r}: not a decodable image ({type(e).__name__}: {e})") from None
        img = self._resized(img, rng)
        if self.flip and rng.random() < self.flip:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        sample = dict(sample)
        sample[self.field] = self._array(img, out)
        return sample

    def _target(self, source):
        """(width, height) the image is resized to cover, or None."""
        if self.size is None:
            return None
        w, h = source
        if self.resize == "shorter":
            scale = self.size / min(w, h)
            return max(1, round(w * scale)), max(1, round(h * scale))
        th, tw = _pair(self.size, "size")
        if self.resize == "exact":
            return tw, th
        scale = max(tw / w, th / h)
        return max(tw, round(w * scale)), max(th, round(h * scale))

    def _resized(self, img, rng):
        Image = _pil()
        target = self._target(img.size)
        if target is None:
            return img
        if img.size != target:
            img = img.resize(target, Image.Resampling.BILINEAR, reducing_gap=None)
        if self.resize != "crop":
            return img
        th, tw = _pair(self.size, "size")
        w, h = img.size
        if self.crop == "random":
            left, top = int(rng.integers(0, w - tw + 1)), int(rng.integers(0, h - th + 1))
        else:
            left, top = (w - tw) // 2, (h - th) // 2
        return img.crop((left, top, left + tw, top + th))

    def _array(self, img, out):
        a = np.asarray(img)
        if a.ndim == 2:
            a = a[:, :, None]
        if self.layout == "CHW":
            a = a.transpose(2, 0, 1)
        if self.dtype == "float32":
            a = a.astype(np.float32, copy=out is None)
            if out is not None:
                np.copyto(out, a)
                a = out
            a *= np.float32(1 / 255)
            if self.normalize is not None:
                mean, std = self.normalize
                shape = (-1, 1, 1) if self.layout == "CHW" else (1, 1, -1)
                a -= mean.reshape(shape)
                a /= std.reshape(shape)
            return a
        if out is not None:
            np.copyto(out, a)
            return out
        return np.array(a)  # its own, writable memory (PIL's is read-only)


class DecodeText(Transform):
    """bytes -> str."""

    def __init__(self, field: str, encoding: str = "utf-8"):
        self.field, self.encoding = field, encoding

    def apply(self, sample, rng, out=None):
        data = _field(sample, self.field, "DecodeText")
        try:
            text = data.decode(self.encoding) if isinstance(data, (bytes, bytearray, memoryview)) else str(data)
        except UnicodeDecodeError as e:
            raise TransformError(f"field {self.field!r}: not {self.encoding} text ({e})") from None
        return {**sample, self.field: text}


class Tokenize(Transform):
    """field -> tokenizer(field) (any callable: a Hugging Face tokenizer's ``encode``, ...),
    as an int64 array when it returns a list of ints."""

    def __init__(self, field: str, tokenizer: Callable):
        self.field, self.tokenizer = field, tokenizer

    def apply(self, sample, rng, out=None):
        tokens = self.tokenizer(_field(sample, self.field, "Tokenize"))
        if isinstance(tokens, list) and all(isinstance(t, int) for t in tokens):
            tokens = np.asarray(tokens, dtype=np.int64)
        return {**sample, self.field: tokens}


class KeepFields(Transform):
    """Only these fields."""

    def __init__(self, fields: Sequence[str]):
        self.fields = list(fields)

    def apply(self, sample, rng, out=None):
        return {f: _field(sample, f, "KeepFields") for f in self.fields}


class RenameFields(Transform):
    """Fields renamed: {old: new}."""

    def __init__(self, names: Mapping[str, str]):
        self.names = dict(names)

    def apply(self, sample, rng, out=None):
        for old in self.names:
            _field(sample, old, "RenameFields")
        return {self.names.get(k, k): v for k, v in sample.items()}


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
    A clip shorter than asked repeats its last frame.
    """

    def __init__(self, field: str, num_frames: int, fps: float | None = None, start="random", size=None):
        if not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f"num_frames={num_frames!r} must be a positive int")
        if fps is not None and not fps > 0:
            raise ValueError(f"fps={fps!r} must be positive")
        _start(start, 0.0, 0.0, None) if start != "random" else None  # validated
        _pair(size, "size")
        _av("video")
        self.field, self.num_frames, self.fps, self.start, self.size = field, num_frames, fps, start, size

    def fixed_output(self):
        if self.size is None or isinstance(self.size, int):
            return None
        h, w = _pair(self.size, "size")
        return self.field, (self.num_frames, 3, h, w), np.dtype(np.uint8)

    def apply(self, sample, rng, out=None):
        av = _av("video")
        data = _field(sample, self.field, "DecodeVideo")
        try:
            with av.open(io.BytesIO(data)) as container:
                if not container.streams.video:
                    raise TransformError(f"field {self.field!r}: no video stream in it")
                stream = container.streams.video[0]
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
        video = np.stack(frames).transpose(0, 3, 1, 2)
        if out is not None:
            np.copyto(out, video)
            video = out
        return {**sample, self.field: video}

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
            with av.open(io.BytesIO(data)) as container:
                if not container.streams.audio:
                    raise TransformError(f"field {self.field!r}: no audio stream in it")
                stream = container.streams.audio[0]
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
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        if out is not None:
            np.copyto(out, audio)
            audio = out
        return {**sample, self.field: audio}


def video_pipeline(field: str, num_frames: int, resolution, *, fps: float | None = None, start="random",
                   keep: Sequence[str] | None = None) -> Compose:
    """The standard video preset: ``num_frames`` frames every 1/fps s from ``start``, resized
    to ``resolution`` ((height, width) or the shorter side), [T, C, H, W] uint8; then only
    ``keep`` fields (default: the video alone)."""
    return Compose([DecodeVideo(field, num_frames, fps=fps, start=start, size=resolution),
                    KeepFields(list(keep) if keep is not None else [field])])


def image_pipeline(field: str, resolution, *, crop: str = "center", flip: float = 0.0, dtype: str = "uint8",
                   normalize=None, keep: Sequence[str] | None = None) -> Compose:
    """The standard image preset: decode, resize to cover ``resolution`` (an int or (height,
    width)) and crop it (center, or random for training), optional flip, CHW; then only
    ``keep`` fields (default: the image alone)."""
    return Compose([DecodeImage(field, size=resolution, resize="crop", crop=crop, flip=flip, dtype=dtype,
                                normalize=normalize),
                    KeepFields(list(keep) if keep is not None else [field])])


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(f"chute.transforms.DecodeImage needs Pillow: {_IMAGE_EXTRA}") from None
    return Image


def _av(kind: str):
    try:
        import av
    except ImportError:
        raise ImportError(f"chute.transforms.Decode{kind.title()} needs PyAV (FFmpeg): {_MEDIA_EXTRA[kind]}") from None
    return av
