"""Image loading: every supported format decodes; every bad input is one clear ImageLoadError."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cunan.faces.imageio import ImageLoadError, decode_image, load_image


def _gradient(width: int = 40, height: int = 30) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)
    y = np.linspace(0, 255, height, dtype=np.uint8)
    arr = np.stack(
        [np.tile(x, (height, 1)), np.tile(y[:, None], (1, width)), np.full((height, width), 90)],
        axis=-1,
    ).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def _encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("fmt", "suffix"),
    [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("BMP", "bmp"), ("GIF", "gif")],
)
def test_common_formats_decode_to_rgb(tmp_path: Path, fmt: str, suffix: str) -> None:
    path = tmp_path / f"img.{suffix}"
    path.write_bytes(_encode(_gradient(), fmt))
    arr = load_image(path)
    assert arr.shape == (30, 40, 3)
    assert arr.dtype == np.uint8
    assert arr.flags["C_CONTIGUOUS"]


def test_pgm_grey_becomes_three_equal_channels(tmp_path: Path) -> None:
    path = tmp_path / "grey.pgm"
    _gradient().convert("L").save(path)
    arr = load_image(path)
    assert arr.shape == (30, 40, 3)
    assert np.array_equal(arr[..., 0], arr[..., 1])
    assert np.array_equal(arr[..., 1], arr[..., 2])


def test_gif_takes_first_frame(tmp_path: Path) -> None:
    red = Image.new("RGB", (20, 20), (255, 0, 0))
    blue = Image.new("RGB", (20, 20), (0, 0, 255))
    path = tmp_path / "anim.gif"
    red.save(path, save_all=True, append_images=[blue], duration=100, loop=0)
    arr = load_image(path)
    assert arr[10, 10, 0] > 200 and arr[10, 10, 2] < 50


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    img = Image.new("RGB", (60, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 20))  # white band on the left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view": the stored landscape shows as portrait
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif.tobytes(), quality=95)
    arr = load_image(path)
    assert arr.shape[:2] == (60, 20)
    # After a 90 degree clockwise turn the white left band becomes the top band.
    assert arr[:8].mean() > 200 and arr[-8:].mean() < 50


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 32768, 65535]], dtype=np.uint16).repeat(4, axis=0)
    path = tmp_path / "deep.png"
    img = Image.new("I;16", (3, 4))
    img.frombytes(values.astype("<u2").tobytes())
    img.save(path)
    arr = load_image(path)
    assert arr[0, :, 0].tolist() == [0, 128, 255]


def test_cmyk_jpeg_converted(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    _gradient().convert("CMYK").save(path)
    arr = load_image(path)
    assert arr.shape == (30, 40, 3)
    reference = np.asarray(_gradient(), dtype=np.float64)
    assert np.abs(arr.astype(np.float64) - reference).mean() < 25


def test_alpha_is_flattened_onto_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    rgba.paste((200, 10, 10, 255), (0, 0, 5, 10))
    path = tmp_path / "alpha.png"
    rgba.save(path)
    arr = load_image(path)
    assert arr[5, 8].tolist() == [255, 255, 255]
    assert arr[5, 2].tolist() == [200, 10, 10]
    la = tmp_path / "la.png"
    Image.new("LA", (4, 4), (100, 255)).save(la)
    assert load_image(la)[0, 0].tolist() == [100, 100, 100]


def test_real_32bit_png(test_images: Path) -> None:
    arr = load_image(test_images / "32bit.png")
    assert arr.ndim == 3 and arr.shape[2] == 3


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty") as info:
        load_image(path)
    assert info.value.source == str(path)


def test_truncated_jpeg(tmp_path: Path) -> None:
    data = _encode(_gradient(200, 200), "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match=r"cut\.jpg: corrupt image"):
        load_image(path)


def test_truncated_png(tmp_path: Path) -> None:
    data = _encode(_gradient(200, 200), "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) - 200])
    with pytest.raises(ImageLoadError, match="corrupt image"):
        load_image(path)


def test_text_file_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("这不是图片 / not a picture")
    with pytest.raises(ImageLoadError, match="not an image file"):
        load_image(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="file not found"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageLoadError, match="directory"):
        load_image(tmp_path)


def test_unsupported_format_named(tmp_path: Path) -> None:
    path = tmp_path / "scan.tiff"
    _gradient().save(path, format="TIFF")
    with pytest.raises(ImageLoadError, match="unsupported image format TIFF"):
        load_image(path)


def test_pixel_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    _gradient(400, 300).save(path)
    with pytest.raises(ImageLoadError, match="over the limit of 100000"):
        load_image(path, max_pixels=100_000)
    assert load_image(path, max_pixels=120_000).shape == (300, 400, 3)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def test_decompression_bomb_refused_before_decoding() -> None:
    # A tiny file whose header claims 100,000 x 100,000 pixels (30 GB decoded).
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + _png_chunk(b"IEND", b"")
    )
    with pytest.raises(ImageLoadError, match=r"over the limit|decompression bomb"):
        decode_image(data, source="bomb.png")


def test_byte_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "large.bmp"
    path.write_bytes(_encode(_gradient(100, 100), "BMP"))
    with pytest.raises(ImageLoadError, match="bytes, over the limit"):
        load_image(path, max_bytes=1000)


_VALID = [_encode(_gradient(), f) for f in ("JPEG", "PNG", "GIF", "WEBP", "BMP")]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(_VALID),
    cut=st.integers(min_value=0, max_value=4000),
    flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=8),
)
def test_fuzzed_images_never_crash(base: bytes, cut: int, flips: list[tuple[int, int]]) -> None:
    data = bytearray(base[: max(1, min(cut, len(base)))] if cut else base)
    for pos, value in flips:
        if data:
            data[pos % len(data)] = value
    try:
        arr = decode_image(bytes(data), source="fuzz")
    except ImageLoadError as exc:
        assert exc.source == "fuzz" and exc.reason
    else:
        assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_never_crash(data: bytes) -> None:
    try:
        decode_image(data, source="random")
    except ImageLoadError as exc:
        assert exc.reason


def test_large_jpeg_is_decoded_reduced_with_its_orientation(tmp_path: Path) -> None:
    img = _gradient(4000, 3000)  # a 12 MP phone photo, made at run time
    img.paste((255, 255, 255), (0, 0, 400, 3000))  # white band on the left edge
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    img.save(path, exif=exif.tobytes(), quality=85)
    reduced = load_image(path, reduce_to=700_000)
    # DCT scaling by 1/4, then the EXIF turn: portrait 750 x 1000.
    assert reduced.shape == (1000, 750, 3)
    assert reduced[:60].mean() > 200 and reduced[-60:].mean() < 200
    assert load_image(path).shape == (4000, 3000, 3)  # without reduce_to: as taken


def test_reduction_never_goes_below_the_asked_pixels(tmp_path: Path) -> None:
    path = tmp_path / "eight.jpg"
    _gradient(3264, 2448).save(path, quality=85)  # 8 MP: 1/2 scale, then a resize
    arr = load_image(path, reduce_to=700_000)
    assert 700_000 <= arr.shape[0] * arr.shape[1] <= 1.5 * 700_000
    png = tmp_path / "big.png"
    _gradient(2400, 1800).save(png)
    arr = load_image(png, reduce_to=400_000)
    assert 400_000 * 0.99 <= arr.shape[0] * arr.shape[1] <= 1.5 * 400_000
    small = tmp_path / "small.jpg"
    _gradient(640, 480).save(small)
    assert load_image(small, reduce_to=700_000).shape == (480, 640, 3)


def test_heic_is_named_as_such(tmp_path: Path) -> None:
    # The start of an iPhone photo: an ISO-BMFF "ftyp" box with the heic brand.
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(struct.pack(">I", 24) + b"ftypheic" + b"\0\0\0\0mif1heic" + b"\0" * 64)
    with pytest.raises(ImageLoadError, match=r"HEIC/HEIF photo \(iPhone format\)"):
        load_image(path)
