"""chute.transforms: decoded images against PIL, video and audio through PyAV, field
presets, deterministic augmentation, and batches decoded by threads with no worker
processes or by worker processes straight into shared memory."""

import io
import math
import os
import sys
import wave

import av
import numpy as np
import pytest
import torch
from PIL import Image

import chute
from chute import transforms as T
from conftest import rank_env

N = 24


def _image(i: int, size=(80, 60), fmt="JPEG") -> bytes:
    """An image with structure (gradients and a moving square), so crops and flips differ."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    pixels = np.stack([(x * 3 + i * 7) % 256, (y * 4 + i * 11) % 256, ((x + y) * 2) % 256], axis=-1).astype(np.uint8)
    pixels[(i * 3) % (h - 10):(i * 3) % (h - 10) + 10, 5:15] = 255
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


def _sample(i):
    return {"id": i, "jpg": _image(i), "png": _image(i, fmt="PNG"), "txt": f"caption {i}".encode()}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("images") / "ds")
    return chute.optimize(_sample, range(N), out, chunk_size=6, num_parts=1, progress=False, num_workers=0)


def _pil(data, mode="RGB"):
    return Image.open(io.BytesIO(data)).convert(mode)


def test_decoded_images_equal_pil(images):
    ds = chute.StreamingDataset(images, transform=[T.DecodeImage("jpg"), T.DecodeImage("png", layout="HWC")])
    for i in (0, 5, N - 1):
        s = ds[i]
        raw = chute.StreamingDataset(images)[i]
        assert s["jpg"].dtype == np.uint8 and s["jpg"].shape == (3, 60, 80)
        assert np.array_equal(s["jpg"], np.asarray(_pil(raw["jpg"])).transpose(2, 0, 1))  # exact without resize
        assert np.array_equal(s["png"], np.asarray(_pil(raw["png"])))


def test_resize_modes_sizes_dtypes_and_normalization(images):
    raw = chute.StreamingDataset(images)[3]["jpg"]
    exact = T.DecodeImage("jpg", size=(30, 50), resize="exact")({"jpg": raw})["jpg"]
    reference = np.asarray(_pil(raw).resize((50, 30), Image.Resampling.BILINEAR)).transpose(2, 0, 1)
    assert exact.shape == (3, 30, 50)
    assert np.abs(exact.astype(int) - reference).max() <= 1  # Pillow's filter, PyTorch's rounding
    shorter = T.DecodeImage("jpg", size=30)({"jpg": raw})["jpg"]
    assert shorter.shape == (3, 30, 40)
    crop = T.DecodeImage("jpg", size=(40, 50), resize="crop", layout="HWC")({"jpg": raw})["jpg"]
    covered = _pil(raw).resize((53, 40), Image.Resampling.BILINEAR)
    assert crop.shape == (40, 50, 3) and np.abs(crop.astype(int) - np.asarray(covered)[:, 1:51]).max() <= 1
    upscaled = T.DecodeImage("png", size=120)({"png": chute.StreamingDataset(images)[3]["png"]})["png"]
    reference = np.asarray(_pil(_image(3, fmt="PNG")).resize((160, 120), Image.Resampling.BILINEAR))
    assert np.abs(upscaled.astype(int) - reference.transpose(2, 0, 1)).max() <= 1
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    f = T.DecodeImage("jpg", dtype="float32", normalize=(mean, std))({"jpg": raw})["jpg"]
    u = T.DecodeImage("jpg")({"jpg": raw})["jpg"]
    expect = (u / 255.0 - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    assert f.dtype == np.float32 and np.allclose(f, expect, atol=1e-5)
    gray = T.DecodeImage("jpg", mode="L")({"jpg": raw})["jpg"]
    luma = Image.open(io.BytesIO(raw))
    luma.draft("L", luma.size)  # libjpeg's own luma (Y), as Pillow decodes for mode L when asked to draft
    assert gray.shape == (1, 60, 80) and np.array_equal(gray[0], np.asarray(luma.convert("L")))
    with pytest.raises(ValueError, match="normalize= needs dtype='float32'"):
        T.DecodeImage("jpg", normalize=(mean, std))


@pytest.mark.parametrize("size, scaled", [((60, 80), (80, 60)), ((100, 130), (160, 120)), ((200, 300), (320, 240))])
def test_jpeg_dct_scaling_is_used_when_the_target_is_small(size, scaled):
    big = _image(1, size=(640, 480))
    img = Image.open(io.BytesIO(big))
    img.draft("RGB", size[::-1])
    assert img.size == scaled  # Pillow's libjpeg decodes at 1/8, 1/4, 1/2 scale
    out = T.DecodeImage("jpg", size=size, resize="exact")({"jpg": big})["jpg"]
    reference = np.asarray(img.convert("RGB").resize(size[::-1], Image.Resampling.BILINEAR)).transpose(2, 0, 1)
    assert out.shape == (3, *size) and np.abs(out.astype(int) - reference).max() <= 1
    whole = np.asarray(_pil(big).resize(size[::-1], Image.Resampling.BILINEAR)).transpose(2, 0, 1)
    assert np.abs(out.astype(int) - whole).max() > 1  # so not decoded whole


def test_pillow_decides_what_simplejpeg_refuses_and_resizes_alpha_and_palettes():
    raw = _image(5)
    sos = raw.index(b"\xff\xda")
    lenient = raw[:sos] + b"\x00\x00" + raw[sos:]  # "extraneous bytes before marker": libjpeg warns
    out = T.DecodeImage("jpg")({"jpg": lenient})["jpg"]
    assert np.array_equal(out, np.asarray(_pil(lenient)).transpose(2, 0, 1))
    rgba = np.asarray(_pil(raw, "RGBA")).copy()
    rgba[:, :, 3] = np.arange(80, dtype=np.uint8)[None, :] * 3  # partly transparent
    for mode, image in (("RGBA", Image.fromarray(rgba)), ("P", _pil(raw).quantize(64))):
        f = io.BytesIO()
        image.save(f, format="PNG")
        out = T.DecodeImage("png", mode=mode, size=30, layout="HWC")({"png": f.getvalue()})["png"]
        reference = np.asarray(Image.open(f).convert(mode).resize((40, 30), Image.Resampling.BILINEAR))
        assert np.array_equal(out.reshape(reference.shape), reference), mode  # premultiplied / nearest, as Pillow


def test_cmyk_jpegs_and_16_bit_pngs_go_through_pillow():
    cmyk, deep = io.BytesIO(), io.BytesIO()
    _pil(_image(2)).convert("CMYK").save(cmyk, format="JPEG")
    Image.fromarray((np.arange(60 * 80).reshape(60, 80) * 13 % 65536).astype(np.uint16)).save(deep, format="PNG")
    out = T.DecodeImage("jpg", size=30)({"jpg": cmyk.getvalue()})["jpg"]
    reference = Image.open(cmyk)
    reference.draft("RGB", (40, 30))
    reference = reference.convert("RGB").resize((40, 30), Image.Resampling.BILINEAR)
    assert np.abs(out.astype(int) - np.asarray(reference).transpose(2, 0, 1)).max() <= 1
    out = T.DecodeImage("png", mode="I;16", size=30, layout="HWC")({"png": deep.getvalue()})["png"]
    reference = Image.open(io.BytesIO(deep.getvalue())).resize((40, 30), Image.Resampling.BILINEAR)
    assert out.dtype == np.uint16 and np.abs(out[:, :, 0].astype(int) - np.asarray(reference)).max() <= 1


def test_corrupt_image_names_the_sample_and_field(images, tmp_path):
    def broken(i):
        return {"jpg": _image(i) if i != 4 else b"\xff\xd8not a jpeg"}

    path = chute.optimize(broken, range(8), str(tmp_path / "broken"), num_parts=1, progress=False, num_workers=0)
    ds = chute.StreamingDataset(path, transform=[T.DecodeImage("jpg")])
    with pytest.raises(T.TransformError, match=r"sample 4: field 'jpg': not a decodable image"):
        list(ds)
    with pytest.raises(T.TransformError, match="the sample has no field 'jpeg'"):
        chute.StreamingDataset(path, transform=[T.DecodeImage("jpeg")])[0]


def test_datasets_with_transforms_pickle(images):
    import pickle

    ds = _train(images)
    list(ds)  # makes its decode threads
    copy = pickle.loads(pickle.dumps(ds))
    assert np.array_equal(copy[3]["jpg"], ds[3]["jpg"]) and sorted(s["id"] for s in copy) == list(range(N))


def test_text_tokenize_keep_and_rename(images):
    ds = chute.StreamingDataset(images, transform=[T.DecodeText("txt"), T.RenameFields({"txt": "caption"}),
                                                   T.Tokenize("caption", lambda s: [len(w) for w in s.split()]),
                                                   T.KeepFields(["id", "caption"])])
    s = ds[7]
    assert sorted(s) == ["caption", "id"] and s["id"] == 7
    assert s["caption"].dtype == np.int64 and s["caption"].tolist() == [7, 1]


def _train(images, **kwargs):
    return chute.StreamingDataset(images, shuffle=True, seed=3,
                                  transform=T.image_pipeline("jpg", 32, crop="random", flip=0.5, keep=["id", "jpg"]),
                                  **kwargs)


def test_loader_builds_image_batches_on_threads_without_worker_processes(images):
    ds = _train(images)
    loader = chute.StreamingDataLoader(ds, batch_size=5)
    assert loader.num_workers == 0 and loader._decode_threads == os.cpu_count()
    batches = list(loader)
    assert len(batches) == len(loader) == math.ceil(N / 5)
    for b in batches:
        assert b["jpg"].dtype == torch.uint8 and b["jpg"].shape[1:] == (3, 32, 32)
        assert b["jpg"].is_contiguous() and b["id"].dtype == torch.int64
    assert sorted(i for b in batches for i in b["id"].tolist()) == list(range(N))
    # The same augmentation as random access gives for that sample and epoch.
    first = batches[0]
    assert torch.equal(first["jpg"][0], torch.from_numpy(ds[int(first["id"][0])]["jpg"]))
    whole = chute.StreamingDataLoader(_train(images), batch_size=5, drop_last=True)
    assert [len(b["id"]) for b in whole] == [5] * (N // 5) == [5] * len(whole)


class _WithBlob:
    """A step of the user's own: a field of `size` bytes (crossing in shared memory)."""

    def __init__(self, size):
        self.size = size

    def __call__(self, sample):
        return {**sample, "blob": bytes([sample["id"]]) * self.size}


# A batch's blobs within / beyond the room a worker first keeps after its rows (1 MiB).
@pytest.mark.parametrize("blob,batch", [(5000, 5), (600_000, 2)])
def test_workers_decode_batches_straight_into_shared_memory(images, blob, batch):
    from chute import _shared_batch

    def dataset():
        return chute.StreamingDataset(images, shuffle=True, seed=3, transform=[
            _WithBlob(blob), T.DecodeImage("jpg", size=32, resize="crop", crop="random", flip=0.5),
            T.KeepFields(["id", "blob", "jpg"])])

    ds = dataset()
    loader = chute.StreamingDataLoader(ds, batch_size=batch, num_workers=2)
    assert loader.num_workers == 2 and loader._worker_decoding is False
    batches, buffers = [], set()
    for b in loader:
        batches.append(b)
        buffers |= {t.data_ptr() for t in _shared_batch._received.values()}  # (forgotten when workers exit)
    assert len(batches) == len(loader) == math.ceil(N / batch)
    assert sorted(i for b in batches for i in b["id"].tolist()) == list(range(N))
    in_place = 0
    for b in batches:
        assert b["jpg"].dtype == torch.uint8 and b["jpg"].shape[1:] == (3, 32, 32)
        assert b["blob"] == [bytes([i]) * blob for i in b["id"].tolist()]
        # Decoded in the worker into the start of the buffer it crossed in (the blobs,
        # first in the batch, were placed after it), and not copied on arrival.
        in_place += b["jpg"].data_ptr() - _shared_batch._ALIGN in buffers
        for i, img in zip(b["id"].tolist(), b["jpg"]):
            assert torch.equal(img, torch.from_numpy(ds[i]["jpg"]))  # the same augmentation as ds[i]
    if blob * batch < 1 << 20:
        assert in_place == len(batches)
    else:  # each worker copies its first batches whole (those decoding meanwhile too), then keeps room
        assert len(batches) - 2 * 3 <= in_place < len(batches)
    whole = chute.StreamingDataLoader(dataset(), batch_size=5, num_workers=2, drop_last=True)
    assert [len(b["id"]) for b in whole] == [5] * (N // 5) == [5] * len(whole)


def _augmented(images, layout, epochs=1, state=None, stop_after=None):
    """{(epoch, id): image bytes} seen by every rank of `layout` (ranks, worker processes;
    0: decoded by threads of the process)."""
    ranks, workers = layout
    seen, saved = {}, None
    for rank in range(ranks):
        with rank_env(rank, ranks, ranks):
            ds = _train(images)
            loader = chute.StreamingDataLoader(ds, batch_size=4 // ranks, num_workers=workers)
            if state is not None:
                loader.load_state_dict(state)
            for epoch in range(epochs):
                for k, b in enumerate(loader):
                    for i, img in zip(b["id"].tolist(), b["jpg"]):
                        seen[(loader._current[0], i)] = img.numpy().tobytes()
                    if stop_after is not None and k + 1 == stop_after:
                        break
            if rank == 0:
                saved = loader.state_dict()
    return seen, saved


def test_augmentation_is_the_same_on_any_layout_and_after_resume(images):
    one, _ = _augmented(images, (1, 0), epochs=2)
    two, _ = _augmented(images, (2, 2), epochs=2)
    assert one == two  # the same crop and flip for each (epoch, sample) on 1 or 2 ranks
    assert any(one[(0, i)] != one[(1, i)] for i in range(N))  # epochs differ
    first, state = _augmented(images, (2, 1), stop_after=2)
    rest, _ = _augmented(images, (1, 2), state=state)
    assert {**first, **rest} == {k: v for k, v in one.items() if k[0] == 0}


def _mp4(frames=30, fps=10, size=(64, 48), noise=False, path=None) -> bytes:
    """An MP4 whose frame k is gray level 8k (plus noise: a bigger file). Written to `path`
    with its index (moov) moved to the front."""
    out = path or io.BytesIO()
    rng = np.random.default_rng(0)
    with av.open(out, "w", format="mp4", options={"movflags": "faststart"} if path else {}) as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        if noise:
            stream.bit_rate = 20_000_000
        for k in range(frames):
            pixels = np.full((size[1], size[0], 3), k * 8 % 256, np.uint8)
            if noise:
                pixels ^= rng.integers(0, 64, pixels.shape, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    if path:
        with open(path, "rb") as f:
            return f.read()
    return out.getvalue()


def test_video_frames_at_the_requested_rate_and_size():
    video = _mp4()
    out = T.DecodeVideo("mp4", num_frames=4, fps=5, start="begin")({"mp4": video})["mp4"]
    assert out.shape == (4, 3, 48, 64) and out.dtype == np.uint8
    levels = out.reshape(4, -1).mean(axis=1) / 8
    assert np.allclose(levels, [0, 2, 4, 6], atol=0.6)  # every other frame of a 10 fps video
    fast = T.DecodeVideo("mp4", num_frames=4, fps=20, start="begin")({"mp4": video})["mp4"]
    assert np.allclose(fast.reshape(4, -1).mean(axis=1) / 8, [0, 0, 1, 1], atol=0.6)  # frames repeat at 2x rate
    later = T.DecodeVideo("mp4", num_frames=2, start=1.0, size=(24, 32))({"mp4": video})["mp4"]
    assert later.shape == (2, 3, 24, 32) and abs(later[0].mean() / 8 - 10) < 1
    clip = T.video_pipeline("mp4", 3, (24, 32), start="random")
    a, b = (clip.apply({"mp4": video}, np.random.default_rng(s))["mp4"] for s in (1, 1))
    assert np.array_equal(a, b)  # random start from the sample's generator
    short = T.DecodeVideo("mp4", num_frames=8, fps=2, start=2.5)({"mp4": video})["mp4"]
    assert short.shape[0] == 8 and np.array_equal(short[-1], short[-2])  # past the end: the last frame repeats
    with pytest.raises(T.TransformError, match="'mp4': not a decodable video"):
        T.DecodeVideo("mp4", 2)({"mp4": b"not a video"})


def _wav(rate=8000, seconds=1.0, channels=2) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    tone = (np.sin(2 * np.pi * 440 * t) * 0.5 * 32767).astype(np.int16)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(tone[:, None], channels, axis=1).tobytes())
    return out.getvalue()


def _flac(rate=22050, seconds=0.5) -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=rate, layout="mono")
        t = np.arange(int(rate * seconds)) / rate
        samples = (np.sin(2 * np.pi * 220 * t) * 0.25 * 32767).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def test_raw_videos_are_read_by_byte_range(s3_server, tmp_path, monkeypatch):
    import boto3

    from chute import _core, _object_reader
    from object_store import create_s3_bucket, s3_options

    video = _mp4(frames=600, fps=10, noise=True, path=str(tmp_path / "clip.mp4"))  # 60 s, index at the front
    monkeypatch.setattr(_object_reader, "BLOCK", 32 << 10)  # ranges much smaller than the video
    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    create_s3_bucket(s3_server.endpoint, "videos")
    for k in range(3):
        s3.put_object(Bucket="videos", Key=f"v/clip{k}.mp4", Body=video)
    rows = "url,label\n" + "".join(f"clip{k}.mp4,{k}\n" for k in range(3)) + "gone.mp4,9\n"
    s3.put_object(Bucket="videos", Key="v/index.csv", Body=rows.encode())

    def dataset(ranged=True, **kwargs):
        return chute.StreamingRawDataset("s3://videos/v/index.csv", columns_to_download=["url"],
                                         storage_options=s3_options(s3_server.endpoint), cache_dir=tmp_path / "cache",
                                         transform=[T.DecodeVideo("url", 4, fps=2, start=20.0, ranged=ranged),
                                                    T.KeepFields(["url", "label"])], **kwargs)

    ds = dataset()
    before = _core.trace_counters()["bytes_fetched"]
    clip = ds[1]
    fetched = _core.trace_counters()["bytes_fetched"] - before
    expected = T.DecodeVideo("url", 4, fps=2, start=20.0)({"url": video})["url"]
    assert clip["label"] == 1 and np.array_equal(clip["url"], expected)
    assert fetched < len(video) / 4  # the index and the frames' packets, not the 60 s
    with pytest.raises(FileNotFoundError, match=r"row 3 of s3://videos/v/index.csv, column 'url': "
                                                 r"s3://videos/v/gone.mp4 does not exist"):
        ds[3]
    skipping = dataset(allow_missing=True)
    assert sorted(b["label"].item() for b in chute.StreamingDataLoader(skipping, batch_size=1)) == [0, 1, 2]
    assert skipping.skipped == [3]
    with pytest.raises(FileNotFoundError, match="gone.mp4 does not exist"):
        skipping[3]  # random access does not skip
    # Fetched whole into the node cache instead: the same frames.
    assert np.array_equal(dataset(ranged=False, allow_missing=True)[1]["url"], expected)
    # A directory of videos: the only object field is read by range, from the file itself.
    os.makedirs(tmp_path / "local")
    os.replace(tmp_path / "clip.mp4", tmp_path / "local" / "0001.mp4")
    local = chute.StreamingRawDataset(tmp_path / "local", cache_dir=tmp_path / "cache",
                                      transform=[T.DecodeVideo("mp4", 4, fps=2, start=20.0)])
    assert np.array_equal(local[0]["mp4"], expected) and local[0]["__key__"] == "0001"


def test_audio_resampled_to_the_requested_rate_and_length():
    wav = _wav()
    mono = T.DecodeAudio("wav", sample_rate=16000)({"wav": wav})["wav"]
    assert mono.dtype == np.float32 and mono.shape[0] == 1 and abs(mono.shape[1] - 16000) <= 32
    assert 0.45 < np.abs(mono).max() < 0.55
    stereo = T.DecodeAudio("wav", sample_rate=8000, mono=False, duration=0.25)({"wav": wav})["wav"]
    assert stereo.shape == (2, 2000)
    padded = T.DecodeAudio("wav", sample_rate=8000, duration=2.0)({"wav": wav})["wav"]
    assert padded.shape == (1, 16000) and not padded[:, 9000:].any()  # silence past the end
    flac = T.DecodeAudio("flac", sample_rate=44100, duration=0.5)({"flac": _flac()})["flac"]
    assert flac.shape == (1, 22050) and 0.2 < np.abs(flac).max() < 0.3


def test_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(ImportError, match=r"pip install 'chute\[video\]'"):
        T.DecodeVideo("mp4", 2)
    with pytest.raises(ImportError, match=r"pip install 'chute\[audio\]'"):
        T.DecodeAudio("wav", 16000)
    for module in ("simplejpeg", "PIL"):
        monkeypatch.setitem(sys.modules, module, None)
        with pytest.raises(ImportError, match=r"pip install 'chute\[image\]'"):
            T.DecodeImage("jpg")
