"""Photo to template: the one enrolment step every adapter (CLI, API, import, 补录) uses."""

from __future__ import annotations

from cunan.faces.engine import FaceEngine
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
    image = decode_image(data, source=source, max_pixels=max_pixels)
    face = engine.enrolment_face(image, source=source)
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
