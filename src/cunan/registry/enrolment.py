"""Photo to template: the one enrolment step every adapter (CLI, API, import, 补录) uses."""

from __future__ import annotations

from collections.abc import Callable

from cunan.domain import AnalyzedFace, RGBImage
from cunan.faces.engine import EnrolmentPhotoError, FaceEngine
from cunan.faces.imageio import decode_image
from cunan.registry.records import PhotoInput, TemplateInput, TemplateQuality
from cunan.storage.enums import TemplateSource

#: Media types by the decoded format (the upload's own name or header is never trusted).
_MEDIA_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
    "MPO": "image/jpeg",
}


def sniff_media_type(data: bytes) -> str:
    """The media type of encoded image bytes, judged by their content."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return _MEDIA_TYPES.get(img.format or "", "application/octet-stream")
    except (UnidentifiedImageError, OSError, ValueError):
        return "application/octet-stream"


#: Enrolment photos are checked at about 0.4 megapixels (a 12 MP photo decoded at 1/4 scale,
#: then resized to 730x548): a portrait's face (a third of the width) stays three times the
#: 80 px enrolment minimum, and HOG costs a seventh of what it costs at 3 MP.
ENROLMENT_DECODE_PIXELS = 400_000
#: The second look at a refused photo has this many times the pixels of the first.
SECOND_LOOK = 4
#: Refusals that a detector with upsampling or more pixels can overturn.
_SIZE_REASONS = ("no face found", "face too small", "eyes too close", "uncertain detection")


def enrolment_face(
    decode: Callable[[int | None], RGBImage],
    fast: FaceEngine,
    full: FaceEngine,
    *,
    source: str,
    reduce_to: int | None = ENROLMENT_DECODE_PIXELS,
) -> AnalyzedFace:
    """The one good face of an enrolment photo, or ImageLoadError/EnrolmentPhotoError.

    ``decode(pixels)`` decodes the photo reduced to about that many pixels (None: full
    size). The photo is checked reduced (a 12 MP phone photo at 1/4 scale: memory bounded,
    many times faster; a portrait's face stays far above the enrolment minimum). Enrolment
    faces are >= 80 px, which HOG finds without upsampling (``fast``) at a quarter of the
    cost; only when that finds no face, or one too small or uncertain, does the configured
    detector (``full``) decide, on the photo at four times the pixels (not at full size:
    upsampling a 12-50 MP photo takes 0.7-2.5 GB and seconds). A refusal for blur, pose,
    light or two faces stands: the same thresholds on more pixels would not change it.
    """
    image = decode(reduce_to)
    try:
        return fast.enrolment_face(image, source=source)
    except EnrolmentPhotoError as exc:
        if not any(word in exc.reason for word in _SIZE_REASONS):
            raise
        larger = image
        if reduce_to is not None and image.shape[0] * image.shape[1] <= 3 * reduce_to:
            bigger = decode(SECOND_LOOK * reduce_to)
            larger = image if bigger.shape == image.shape else bigger
        if fast is full and larger is image:
            raise
        return full.enrolment_face(larger, source=source)


def template_from_photo(
    engine: FaceEngine,
    data: bytes,
    *,
    source: str,
    max_pixels: int,
    keep_photo: bool = True,
    template_source: TemplateSource = TemplateSource.ENROLMENT_PHOTO,
) -> TemplateInput:
    """The template of the one good face in an encoded photo.

    Raises :class:`~cunan.faces.imageio.ImageLoadError` for bytes that are not a usable
    image and :class:`~cunan.faces.engine.EnrolmentPhotoError` for a photo without exactly
    one face of enrolment quality (the message says what is wrong). ``keep_photo`` attaches
    the photo; the registry still stores it only where ``keep_enrolment_photos`` is set.
    """
    face = enrolment_face(
        lambda pixels: decode_image(data, source=source, max_pixels=max_pixels, reduce_to=pixels),
        engine,
        engine,
        source=source,
    )
    if face.embedding is None or face.model_id is None:  # enrolment always embeds
        raise RuntimeError(f"{source}: the engine returned a face without an embedding")
    q = face.quality
    return TemplateInput(
        vector=face.embedding,
        model_id=face.model_id,
        source=template_source,
        quality=TemplateQuality(
            face_width_px=q.face_width_px,
            sharpness=q.sharpness,
            frontalness=q.frontalness,
            brightness=q.brightness,
            detector_score=face.face.score,
        ),
        photo=PhotoInput(data=data, media_type=sniff_media_type(data)) if keep_photo else None,
    )
