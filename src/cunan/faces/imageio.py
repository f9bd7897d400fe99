"""Image loading that never crashes: any input becomes an RGB array or one clear ImageLoadError."""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cunan.domain import RGBImage

logger = logging.getLogger(__name__)

#: Formats accepted from users and cameras. PGM/PPM/PBM are Pillow's "PPM"; MPO is the
#: multi-picture JPEG many phones write.
SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP", "GIF", "PPM"})
#: 40 megapixels: above any phone or camera photo a village would enrol, far below
#: what would exhaust memory (40 MP RGB = 120 MB).
DEFAULT_MAX_PIXELS = 40_000_000
#: Refuse files larger than this before reading them at all.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: HEIF-family brands (iPhone photos, AVIF) in an ISO-BMFF ``ftyp`` box, which Pillow cannot
#: decode without a plugin; named so the user learns what to do instead of "not an image".
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}
)
#: A reduced decode stops halving (JPEG DCT scaling) before it would go below this share of
#: the asked-for pixels; the rest is a resize.
_REDUCE_SLACK = 1.5


class ImageLoadError(ValueError):
    """An input could not be turned into an image; ``source`` names it, ``reason`` says why."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


def load_image(
    path: str | Path,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    reduce_to: int | None = None,
) -> RGBImage:
    """Read an image file as an RGB uint8 array, upright according to its EXIF orientation.

    ``reduce_to``: decode a larger picture reduced to about this many pixels (never fewer);
    see :func:`decode_image`.
    """
    path = Path(path)
    source = str(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageLoadError(source, "file not found") from None
    except OSError as exc:
        raise ImageLoadError(source, f"cannot read file ({exc.strerror or exc})") from None
    if path.is_dir():
        raise ImageLoadError(source, "is a directory, not an image file")
    if size == 0:
        raise ImageLoadError(source, "file is empty (0 bytes)")
    if size > max_bytes:
        raise ImageLoadError(source, f"file is {size} bytes, over the limit of {max_bytes}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageLoadError(source, f"cannot read file ({exc.strerror or exc})") from None
    return decode_image(
        data, source=source, max_pixels=max_pixels, max_bytes=max_bytes, reduce_to=reduce_to
    )


def decode_image(
    data: bytes,
    *,
    source: str = "<bytes>",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    reduce_to: int | None = None,
) -> RGBImage:
    """Decode encoded image bytes (an upload, a camera snapshot) as an RGB uint8 array.

    With ``reduce_to``, a picture of more pixels comes back scaled down to about that many
    (at least that many, at most 1.5x): a JPEG is decoded reduced by the decoder itself (DCT
    scaling by 1/2, 1/4 or 1/8), so a 12-50 MP phone photo never occupies full-size memory
    and decodes several times faster; other formats are reduced after decoding.
    """
    if len(data) == 0:
        raise ImageLoadError(source, "file is empty (0 bytes)")
    if len(data) > max_bytes:
        raise ImageLoadError(source, f"file is {len(data)} bytes, over the limit of {max_bytes}")
    # Pillow's own bomb check only warns below 2x its global limit; turning the warning
    # into an error and checking our own limit first keeps one rule for every caller.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as img:
                fmt = img.format or "unknown"
                if fmt not in SUPPORTED_FORMATS:
                    raise ImageLoadError(
                        source,
                        f"unsupported image format {fmt}; use one of "
                        + ", ".join(sorted(SUPPORTED_FORMATS - {"MPO"})),
                    )
                width, height = img.size
                if width <= 0 or height <= 0:
                    raise ImageLoadError(source, f"image has no pixels ({width}x{height})")
                if width * height > max_pixels:
                    raise ImageLoadError(
                        source,
                        f"image is {width}x{height} = {width * height} pixels, "
                        f"over the limit of {max_pixels}",
                    )
                if getattr(img, "n_frames", 1) > 1:
                    img.seek(0)  # animated GIF/WebP: the first frame is the picture
                if reduce_to is not None and fmt in ("JPEG", "MPO"):
                    _draft(img, reduce_to)
                img.load()
                picture = _upright(img, source)
                if reduce_to is not None:
                    picture = _reduced(picture, reduce_to)
                return _to_rgb(picture)
        except ImageLoadError:
            raise
        except UnidentifiedImageError:
            if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
                raise ImageLoadError(
                    source,
                    "HEIC/HEIF photo (iPhone format), which is not supported; convert it to "
                    "JPEG, or set the phone to save JPEG (Camera > Formats > Most Compatible)",
                ) from None
            raise ImageLoadError(source, "not an image file (format not recognised)") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageLoadError(
                source, "image is a decompression bomb (too many pixels)"
            ) from None
        except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
            # Pillow signals truncation and corruption with several exception types.
            reason = str(exc) or type(exc).__name__
            if "truncated" in reason:
                reason = "image data is truncated"
            raise ImageLoadError(source, f"corrupt image ({reason})") from None
        except MemoryError:
            raise ImageLoadError(source, "image too large to decode in memory") from None


def _draft(img: Image.Image, pixels: int) -> None:
    """Let the JPEG decoder scale by the largest power of two that keeps >= ``pixels``."""
    width, height = img.size
    scale = 1
    while scale < 8 and (width // (scale * 2)) * (height // (scale * 2)) >= pixels:
        scale *= 2
    if scale > 1:
        img.draft(None, (-(-width // scale), -(-height // scale)))


def _reduced(img: Image.Image, pixels: int) -> Image.Image:
    """Scale down to about ``pixels`` when more than 1.5 times that remain."""
    width, height = img.size
    if width * height <= pixels * _REDUCE_SLACK:
        return img
    factor = (pixels / (width * height)) ** 0.5
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _upright(img: Image.Image, source: str) -> Image.Image:
    try:
        return ImageOps.exif_transpose(img)
    except Exception as exc:  # noqa: BLE001 - malformed EXIF must not lose the picture
        # File names are often people's names: the path stays at DEBUG.
        logger.warning("ignoring an unreadable EXIF orientation (%s)", type(exc).__name__)
        logger.debug("%s: unreadable EXIF orientation: %s", source, exc)
        return img


def _to_rgb(img: Image.Image) -> RGBImage:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit grey: scale to 8 bits by the type's range, not by clipping.
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        grey = np.clip(arr * (255.0 / top), 0, 255).round().astype(np.uint8)
        return np.ascontiguousarray(np.stack([grey] * 3, axis=-1))
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        hi = float(arr.max(initial=0.0))
        scale = 255.0 if hi <= 1.0 else 1.0
        grey = np.clip(arr * scale, 0, 255).round().astype(np.uint8)
        return np.ascontiguousarray(np.stack([grey] * 3, axis=-1))
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        # Transparent pixels carry arbitrary colour; flatten them onto white like a viewer.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    rgb = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
