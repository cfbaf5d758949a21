"""Decoding and field presets for chute datasets: image, video, audio and text.

Each transform is a picklable callable on a sample dict; a list of them (or
:class:`Compose`) is one transform. Given as a dataset's ``transform``, they run on a pool
of threads — the decoders (simplejpeg, Pillow, FFmpeg through PyAV) and PyTorch's resize
release the GIL — several samples at a time, fixed-shape outputs written straight into the
batch tensor: in each worker process of a :class:`chute.StreamingDataLoader`, into the
shared memory the batch crosses in; with ``num_workers=0`` and only these steps, on
threads of the training process. A step of a list may also be a function of a sample.

Randomness (crops, flips, start frames) is drawn from a generator seeded by (dataset seed,
epoch, sample id): a resumed run, and any cluster layout, augment each sample the same way.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from chute._media import DecodeAudio, DecodeVideo, video_pipeline
from chute._transform_base import Compose, KeepFields, Transform, TransformError, _field, _into, _pair, as_transform

_IMAGE_EXTRA = "pip install 'chute[image]'"

__all__ = ["Compose", "DecodeAudio", "DecodeImage", "DecodeText", "DecodeVideo", "KeepFields", "RenameFields",
           "Tokenize", "Transform", "TransformError", "as_transform", "image_pipeline", "video_pipeline"]


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

    JPEGs in L, RGB or RGBA are decoded by simplejpeg (libjpeg-turbo; 1.2 ms against
    Pillow's 1.4 for a 400x350 photo, the same pixels), at 1/2, 1/4 or 1/8 scale by the
    decoder itself (DCT scaling) when the target is at most that fraction of the source;
    other images (and CMYK JPEGs, or JPEGs libjpeg warns about) by Pillow. Resizing is
    bilinear with antialiasing, Pillow's filter, through PyTorch's vectorized kernel (0.3 ms
    against Pillow's 0.9 for that photo to 256x224; pixels within 1 level of Pillow's);
    images with alpha or a palette are resized by Pillow (premultiplied alpha, nearest
    palette entries).
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
        _pil(), _simplejpeg()  # the extra is there
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
        data = _field(sample, self.field, "DecodeImage")
        try:
            pixels, target = self._decoded(data)
        except Exception as e:
            raise TransformError(f"field {self.field!r}: not a decodable image ({type(e).__name__}: {e})") from None
        pixels = self._resized(pixels, target, rng)
        if self.mode == "RGB":
            pixels = pixels[:, :, :3]  # (JPEGs resized as RGBX)
        if self.flip and rng.random() < self.flip:
            pixels = pixels[:, ::-1]
        return {**sample, self.field: self._array(pixels, out)}

    def _decoded(self, data):
        """(HWC pixels in self.mode, perhaps DCT-scaled; the (width, height) they are resized
        to cover, or None)."""
        colorspace = _JPEG_COLORSPACES.get(self.mode)
        if colorspace is not None and bytes(data[:2]) == b"\xff\xd8":
            decoded = self._jpeg(data, colorspace)
            if decoded is not None:
                return decoded
        Image = _pil()
        img = Image.open(io.BytesIO(data))
        target = self._target(img.size)
        if target is not None and img.format == "JPEG":
            img.draft(self.mode, target)
        img = img.convert(self.mode) if img.mode != self.mode else img
        if target is not None and img.mode not in _PLAIN_CHANNELS:
            # Pillow's own resize: it premultiplies alpha, and palettes and bits take the nearest
            img = img.resize(target, Image.Resampling.BILINEAR, reducing_gap=None)
        pixels = np.array(img)
        return (pixels[:, :, None] if pixels.ndim == 2 else pixels), target

    def _jpeg(self, data, colorspace):
        """_decoded's result by simplejpeg, or None for what Pillow decides: CMYK (Adobe's
        inverted CMYK is Pillow's conversion) and files libjpeg warns about (say, extraneous
        bytes), which Pillow reads more leniently."""
        simplejpeg = _simplejpeg()
        try:
            height, width, source_space, _ = simplejpeg.decode_jpeg_header(data)
            if source_space in ("CMYK", "YCCK"):
                return None
            target = self._target((width, height))
            if colorspace == "RGB" and target is not None:
                colorspace = "RGBX"  # PyTorch resizes 4 channels without repacking them: 5-10% faster
            f = _dct_factor((width, height), target)
            pixels = simplejpeg.decode_jpeg(data, colorspace, min_height=-(-height // f), min_width=-(-width // f),
                                            min_factor=f)
        except ValueError:
            return None
        return pixels, target

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

    def _resized(self, pixels, target, rng):
        if target is None:
            return pixels
        pixels = _resize(pixels, target)
        if self.resize != "crop":
            return pixels
        th, tw = _pair(self.size, "size")
        w, h = target
        if self.crop == "random":
            left, top = int(rng.integers(0, w - tw + 1)), int(rng.integers(0, h - th + 1))
        else:
            left, top = (w - tw) // 2, (h - th) // 2
        return pixels[top:top + th, left:left + tw]

    def _array(self, pixels, out):
        a = pixels.transpose(2, 0, 1) if self.layout == "CHW" else pixels
        if self.dtype == "float32":
            a = a.astype(np.float32) if out is None else _into(out, a)  # (a float32 copy either way)
            a *= np.float32(1 / 255)
            if self.normalize is not None:
                mean, std = self.normalize
                shape = (-1, 1, 1) if self.layout == "CHW" else (1, 1, -1)
                a -= mean.reshape(shape)
                a /= std.reshape(shape)
            return a
        return np.ascontiguousarray(a) if out is None else _into(out, a)


_JPEG_COLORSPACES = {"L": "GRAY", "RGB": "RGB", "RGBA": "RGBA"}  # (a JPEG's alpha is opaque)
# Modes whose channels resize independently, as PyTorch's kernel does.
_PLAIN_CHANNELS = {"L", "RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "I", "I;16", "F"}


def _dct_factor(source, target) -> int:
    """The largest of 8, 4, 2 the source can be shrunk by and still cover target (else 1)."""
    if target is None:
        return 1
    room = min(source[0] // target[0], source[1] // target[1])
    return next((f for f in (8, 4, 2) if f <= room), 1)


def _resize(pixels, size):
    """HWC pixels resized to size (width, height): bilinear with antialiasing (Pillow's
    filter), by PyTorch's kernel, which is vectorized for uint8 RGB/RGBA in HWC order."""
    import torch
    import torch.nn.functional as F

    width, height = size
    if pixels.shape[1] == width and pixels.shape[0] == height:
        return pixels
    values = pixels if pixels.dtype == np.uint8 else pixels.astype(np.float32)  # modes I, I;16, F
    image = torch.from_numpy(values).permute(2, 0, 1)[None]  # NCHW with HWC memory (channels_last)
    resized = F.interpolate(image, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    resized = resized[0].permute(1, 2, 0).numpy()
    if resized.dtype == pixels.dtype:
        return resized
    if np.issubdtype(pixels.dtype, np.integer):
        limits = np.iinfo(pixels.dtype)
        resized = np.rint(resized).clip(limits.min, limits.max)
    return resized.astype(pixels.dtype)


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


class RenameFields(Transform):
    """Fields renamed: {old: new}."""

    def __init__(self, names: Mapping[str, str]):
        self.names = dict(names)

    def apply(self, sample, rng, out=None):
        for old in self.names:
            _field(sample, old, "RenameFields")
        return {self.names.get(k, k): v for k, v in sample.items()}


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


def _simplejpeg():
    try:
        import simplejpeg
    except ImportError:
        raise ImportError(f"chute.transforms.DecodeImage needs simplejpeg: {_IMAGE_EXTRA}") from None
    return simplejpeg
