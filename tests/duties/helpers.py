"""A frozen clock and a small seeded village for the duty and statistics tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import update

from cunan.duties.clock import start_of_day
from cunan.pipeline.store import CameraStore, SightingStore
from cunan.registry.records import ConsentInput, NewPerson, TemplateInput, Vector
from cunan.registry.service import NewTenancy, RegistryService
from cunan.storage.database import Database
from cunan.storage.enums import PersonCategory
from cunan.storage.tables import FaceTemplate, Person
from tests.sightings import new_sighting

#: 2025-06-01 09:00 in the village (Asia/Shanghai, UTC+8).
NOW = datetime(2025, 6, 1, 1, 0, tzinfo=UTC)
TODAY = date(2025, 6, 1)
MODEL = "dlib_resnet_v1"


class FrozenClock:
    """A clock that only moves when told to."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now = self.now + timedelta(**delta)
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment


class RecordingListener:
    def __init__(self) -> None:
        self.added: list[int] = []
        self.removed: list[int] = []

    def on_added(self, template_id: int, person_id: int, vector: Vector, model_id: str) -> None:
        self.added.append(template_id)

    def on_removed(self, template_ids: list[int]) -> None:
        self.removed.extend(template_ids)


def vector(seed: int) -> Vector:
    v = np.random.default_rng(seed).standard_normal(128).astype(np.float32)
    return (v / np.linalg.norm(v)).astype(np.float32)


@dataclass
class Village:
    """Ids of a seeded village: one landlord, houses with rooms."""

    id: int
    landlord: int
    houses: list[int] = field(default_factory=list)
    rooms: list[int] = field(default_factory=list)


def seed_village(service: RegistryService, *, houses: int = 1, rooms_per_house: int = 2) -> Village:
    village_id = service.add_village("桃源村")
    landlord = service.add_landlord(village_id, "房东 李")
    village = Village(id=village_id, landlord=landlord)
    for h in range(houses):
        house = service.add_house(village_id, f"桃源路{h + 1}号", landlord_id=landlord)
        village.houses.append(house)
        for r in range(rooms_per_house):
            village.rooms.append(service.add_room(house, f"{r + 1}01", capacity=2))
    return village


def add_tenant(
    service: RegistryService,
    village: Village,
    room: int,
    *,
    name: str = "租客",
    move_in: date = date(2025, 1, 1),
    expected_end: date | None = None,
    templates: int = 1,
    seed: int = 0,
    enrolled_at: datetime | None = None,
    category: PersonCategory = PersonCategory.TENANT,
) -> int:
    """A tenant living in ``room`` from ``move_in``, with ``templates`` face templates."""
    person_id = service.add_person(
        NewPerson(name=name, village_id=village.id, category=category),
        consent=ConsentInput(collected_by="网格员 王", collected_at=NOW) if templates else None,
        templates=[
            TemplateInput(vector=vector(seed + i), model_id=MODEL) for i in range(templates)
        ],
        tenancy=NewTenancy(
            room_id=room, move_in=move_in, reported_by="房东 李", expected_end=expected_end
        )
        if room
        else None,
    )
    # Rows take the wall clock by default; pin them to the frozen timeline.
    when = enrolled_at or start_of_day(move_in, ZoneInfo("Asia/Shanghai"))
    backdate_person(service.database, person_id, when)
    return person_id


def backdate_person(database: Database, person_id: int, when: datetime) -> None:
    with database.transaction() as session:
        session.execute(
            update(FaceTemplate).where(FaceTemplate.person_id == person_id).values(created_at=when)
        )
        session.execute(
            update(Person)
            .where(Person.id == person_id)
            .values(created_at=when, updated_at=when)
            .execution_options(synchronize_session=False)
        )


class Sightings:
    """Adds sightings straight to the store, as the camera pipeline would."""

    def __init__(self, database: Database, service: RegistryService) -> None:
        self.store = SightingStore(database, service.cipher)
        self.cameras = CameraStore(database)
        self._camera_ids: dict[str, int] = {}
        self._n = 0

    def camera(self, name: str) -> int:
        if name not in self._camera_ids:
            self._camera_ids[name] = self.cameras.add(name, f"rtsp://cam/{name}")
        return self._camera_ids[name]

    def add(
        self,
        at: datetime,
        *,
        decision: str = "unknown",
        person_id: int | None = None,
        camera: str = "east-gate",
        crop: bool = True,
    ) -> int:
        self._n += 1
        sighting = new_sighting(
            vector(self._n) if crop else None,
            at=at,
            camera=camera,
            track_key=f"t{self._n}",
            camera_id=self.camera(camera),
            ended_at=at + timedelta(seconds=4),
            decision=decision,
            person_id=person_id,
            distance=0.3 if decision == "known" else None,
            crop_jpeg=b"\xff\xd8fake-jpeg" if crop else None,
        )
        return self.store.add(sighting).sighting_id
