"""What is wrong with a photo, in words staff understand: engine reasons mapped in one place."""

from __future__ import annotations

from dataclasses import dataclass

from cunan.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class Plain:
    """One problem said plainly, in Chinese (the village's language) and English."""

    zh: str
    en: str

    def text(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en

    def both(self) -> str:
        return f"{self.zh} ({self.en})"


_NOT_FOUND = Plain(
    "找不到这张照片，请核对照片文件名", "photo not found: check the photo's file name"
)

#: A fragment of an engine or image-loading reason (cunan.faces.quality, cunan.faces.engine,
#: cunan.faces.imageio) and what staff should be told instead. Reasons carry measurements
#: ("face too small (41 px < 80 px)"): staff need what to do, not the numbers. Order matters
#: only for display; each fragment that occurs in a reason gives one message.
RULES: tuple[tuple[str, Plain], ...] = (
    (
        "no face found",
        Plain("照片里找不到人脸，请正对镜头重拍", "no face found: face the camera and retake"),
    ),
    (
        "faces of enrolment quality",
        Plain("照片里不止一个人，请只拍一个人", "more than one person: photograph one person only"),
    ),
    ("face too small", Plain("脸太小，请走近一些", "face too small: move closer")),
    ("eyes too close", Plain("脸太小，请走近一些", "face too small: move closer")),
    (
        "too blurry",
        Plain("照片太模糊，请拿稳手机再拍", "too blurry: hold the phone still and retake"),
    ),
    (
        "not frontal",
        Plain("脸没有正对镜头，请看着镜头", "not facing the camera: look straight at it"),
    ),
    ("too dark", Plain("太暗了，请到亮一点的地方拍", "too dark: move to more light")),
    ("too bright", Plain("太亮了，请避开强光或背光", "too bright: avoid strong or back light")),
    (
        "uncertain detection",
        Plain("看不清是不是人脸，请正对镜头重拍", "face unclear: face the camera and retake"),
    ),
    (
        "not an image file",
        Plain(
            "这不是照片文件，请选 JPG 或 PNG 照片", "not a photo file: choose a JPG or PNG photo"
        ),
    ),
    ("file not found", _NOT_FOUND),
    # The roster import's word for a photo the ZIP does not hold.
    ("missing photo", _NOT_FOUND),
    (
        "file is empty",
        Plain("文件是空的，请重新选择照片", "the file is empty: choose the photo again"),
    ),
    ("over the limit", Plain("照片文件太大，请换一张", "the photo file is too large: use another")),
    ("image too large", Plain("照片太大，请换一张", "the photo is too large: use another")),
    ("corrupt image", Plain("照片文件已损坏，请重拍", "the photo file is damaged: retake it")),
    ("has no pixels", Plain("照片文件已损坏，请重拍", "the photo file is damaged: retake it")),
)


def explain(reason: str) -> list[Plain]:
    """The plain messages for an engine reason (several problems may be listed in one);
    an unknown reason is left to the caller, who shows it as it is."""
    lowered = reason.lower()
    found: list[Plain] = []
    for fragment, plain in RULES:
        if fragment in lowered and plain not in found:
            found.append(plain)
    return found


def plain_text(reason: str) -> str:
    """The reason for an error text read by people (API, logs): the plain words in both
    languages, then the measured reason in brackets for whoever tunes the thresholds."""
    plain = explain(reason)
    if not plain:
        return reason
    return "；".join(p.both() for p in plain) + f" [{reason}]"


@dataclass(frozen=True, slots=True)
class PhotoProblem:
    """One refused photo: which one (``photo 2``), the plain words, and the engine's reason."""

    source: str
    plain: list[Plain]
    reason: str


class PhotoRefused(InvalidInput):
    """Photos that cannot be enrolled; nothing was stored. ``problems`` says why, per photo."""

    def __init__(self, problems: list[PhotoProblem]) -> None:
        super().__init__(
            "; ".join(f"{p.source}: {plain_text(p.reason)}" for p in problems)
            + " (nothing was stored)"
        )
        self.problems = problems
