"""Re-embedding the kept enrolment photos with the configured model (``cunan faces reembed``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

import typer
from rich.console import Console

from cunan.audit.log import AuditAction
from cunan.cliutil import DataDirOption, opened_app
from cunan.faces.engine import EnrolmentPhotoError, FaceEngine
from cunan.faces.imageio import ImageLoadError
from cunan.registry.enrolment import template_from_photo
from cunan.registry.service import RegistryService

console = Console()


@dataclass(slots=True)
class ReembedReport:
    """What one run did. People are listed by id only (names stay in the registry)."""

    model_id: str
    photos_total: int = 0
    embedded: int = 0
    already_done: int = 0
    #: (photo id, person id, why): photos that gave no template (unreadable, no good face).
    failed: list[tuple[int, int, str]] = field(default_factory=list)
    #: People with templates of other models only and no kept photo: they need new photos.
    people_without_photos: list[int] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "model_id": self.model_id,
            "photos": self.photos_total,
            "embedded": self.embedded,
            "already_done": self.already_done,
            "failed": [{"photo_id": p, "person_id": q, "reason": r} for p, q, r in self.failed],
            "people_without_photos": self.people_without_photos,
        }


def plan(service: RegistryService, model_id: str) -> tuple[list[tuple[int, int]], list[int], int]:
    """(photo id, person id) still to embed with ``model_id``, the people who cannot be
    embedded again (templates of other models, no kept photo, none of ``model_id``), and
    how many photos already have a template of ``model_id``."""
    refs = service.template_refs()
    done = {photo for _, _, photo, model in refs if photo is not None and model == model_id}
    has_model = {person for _, person, _, model in refs if model == model_id}
    todo: dict[int, int] = {}
    with_photo: set[int] = set()
    for _, person, photo, model in refs:
        if photo is not None:
            with_photo.add(person)
            if model != model_id and photo not in done:
                todo.setdefault(photo, person)
    stranded = sorted(
        {person for _, person, _, model in refs if model != model_id} - with_photo - has_model
    )
    return sorted(todo.items()), stranded, len(done)


def reembed(
    service: RegistryService,
    engine: FaceEngine,
    *,
    max_pixels: int = 40_000_000,
    progress: Callable[[int, int], None] | None = None,
) -> ReembedReport:
    """Embed every kept enrolment photo that has no template of ``engine``'s model yet.

    Each photo is stored in its own transaction, so a run that stops (Ctrl-C, a crash)
    loses at most the photo in hand and the next run goes on from there. Templates of the
    previous model stay (switching back needs no re-embedding; the gallery uses only the
    configured model's). The run is audited as ``template.reembed``; each new template as
    ``template.add`` naming its photo and model.
    """
    model_id = engine.model_id
    todo, stranded, done = plan(service, model_id)
    report = ReembedReport(
        model_id=model_id,
        photos_total=len(todo) + done,
        already_done=done,
        people_without_photos=stranded,
    )
    for n, (photo_id, person_id) in enumerate(todo, 1):
        try:
            # The same checks and embedding as at enrolment, without a second copy.
            template = template_from_photo(
                engine,
                service.photo(photo_id).data,
                source=f"photo {photo_id} of person {person_id}",
                max_pixels=max_pixels,
                keep_photo=False,
            )
        except (EnrolmentPhotoError, ImageLoadError) as exc:
            report.failed.append((photo_id, person_id, str(exc)))
        else:
            stored = service.add_template_from_photo(photo_id, template)
            if stored is None:
                report.already_done += 1  # another run got there first
            else:
                report.embedded += 1
        if progress is not None:
            progress(n, len(todo))
    service.record_audit(
        AuditAction.TEMPLATE_REEMBED,
        target_type="model",
        target_id=model_id,
        details={
            "photos": report.photos_total,
            "embedded": report.embedded,
            "already_done": report.already_done,
            "failed": len(report.failed),
            "people_without_photos": len(report.people_without_photos),
        },
    )
    return report


def reembed_command(
    data_dir: DataDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """用新模型重新提取特征 / Embed the kept enrolment photos with the configured model.

    After changing the recognition model (faces.onnx_model), run this once: every kept
    enrolment photo gets a template of the new model; people whose photos were not kept
    (registry.keep_enrolment_photos off) are listed, to be photographed again. Safe to
    stop and run again: it goes on where it stopped.
    """

    def show(n: int, total: int) -> None:
        if not as_json and (n == total or n % 20 == 0):
            console.print(f"{n}/{total} 张照片 photos", markup=False, highlight=False)

    with opened_app(data_dir) as (_, services):
        report = services.reembed_photos(progress=show)
    if as_json:
        print(json.dumps(report.as_json(), ensure_ascii=False))
    else:
        for line in words(report):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    if report.failed:
        raise typer.Exit(1)


def words(report: ReembedReport) -> list[str]:
    """The run's outcome, Chinese first."""
    lines = [
        f"模型 {report.model_id}: 新提取 {report.embedded} 张照片, "
        f"已完成 {report.already_done} 张, 失败 {len(report.failed)} 张 / "
        f"model {report.model_id}: {report.embedded} photo(s) "
        f"embedded, {report.already_done} already done, {len(report.failed)} failed",
    ]
    for photo_id, person_id, reason in report.failed:
        lines.append(f"  照片 {photo_id} (人员 {person_id}) 失败 / photo {photo_id} of person "
                     f"{person_id} failed: {reason}")  # fmt: skip
    if report.people_without_photos:
        ids = ", ".join(map(str, report.people_without_photos))
        lines.append(
            f"{len(report.people_without_photos)} 人没有保存的登记照片, 需重新采集 / "
            f"{len(report.people_without_photos)} people have no kept photo and must be "
            f"photographed again (person ids): {ids}"
        )
    return lines
