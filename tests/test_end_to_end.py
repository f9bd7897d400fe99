"""The story: a stranger is sighted -> case -> 补录 from its crops -> recognised, nothing new."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from cunan.capture.sources import SourceConfig
from cunan.cases.consumer import CaseConsumer
from cunan.cases.service import CaseService
from cunan.config import Settings
from cunan.pipeline.build import build_runner
from cunan.pipeline.runner import CameraTarget
from cunan.pipeline.store import EventOutbox
from cunan.registry.datadir import initialise
from cunan.registry.records import ConsentInput, NewPerson
from cunan.registry.service import NewTenancy
from tests.cases.conftest import RecordingChannel
from tests.conftest import require_data

pytestmark = pytest.mark.slow


def test_stranger_to_enrolled_tenant(tmp_path: Path) -> None:
    from cunan.notify.dispatcher import NotificationDispatcher

    clip = require_data("face_recognition_examples/examples/short_hamilton_clip.mp4")
    registry = initialise(
        tmp_path / "data",
        Settings(),
        admin_username="admin",
        admin_password="Correct-horse-battery-9",
        village_name="桃源村",
    )
    channel = RecordingChannel()
    dispatcher = NotificationDispatcher({"test": channel})
    try:
        service = CaseService(
            registry.database, registry.service.cipher, registry.service, dispatcher=dispatcher
        )
        consumer = CaseConsumer(service, EventOutbox(registry.database))

        def watch() -> list[str]:
            target = CameraTarget(name="stage-door", source=SourceConfig(str(clip), realtime=False))
            runner = build_runner(registry, Settings(), target)
            return [s.decision.verdict for s in runner.run()]

        # 1. Empty registry: Lin-Manuel Miranda is a stranger -> one case, one alert.
        first = watch()
        assert "unknown" in first and "known" not in first, first
        consumer.poll()
        [case] = service.list_cases()
        assert [n.kind for n in channel.sent] == ["case.opened"]
        assert "crop" not in str(channel.sent[0].data)
        assert service.best_crops(case.id)

        # 2. On site: he is a tenant. 补录 with consent, room and landlord.
        village = registry.service.default_village_id()
        landlord = registry.service.add_landlord(village, "房东 李")
        house = registry.service.add_house(village, "桃源路 1号", landlord_id=landlord)
        room = registry.service.add_room(house, "201")
        result = service.enrol(
            case.id,
            actor="user:1",
            person=NewPerson(name="Lin-Manuel Miranda", village_id=village),
            consent=ConsentInput(collected_by="网格员 王", collected_at=datetime.now(UTC)),
            tenancy=NewTenancy(room_id=room, move_in=date(2025, 6, 1), reported_by="user:1"),
        )
        assert result.template_ids
        assert registry.service.tenancies_of(result.person_id)[0].landlord_id == landlord
        assert service.get(case.id).status == "closed"

        # 3. The same video again: he is recognised, and nothing new is raised.
        second = watch()
        assert "known" in second and "unknown" not in second, second
        consumer.poll()
        assert service.list_cases() == []
        assert len(channel.sent) == 1
    finally:
        dispatcher.close()
        registry.close()
