"""The API benchmark's village: people, places, tenancies, sightings and cases, in bulk."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from cunan.app import CunanApp
from cunan.auth.service import AuthService
from cunan.authz import local_principal
from cunan.pipeline.store import crop_context, embedding_context
from cunan.registry.records import DEFAULT_CONSENT_SCOPE
from cunan.registry.service import encode_vector, template_context
from cunan.storage.bulk_repository import BulkRepository
from cunan.storage.case_tables import Case, CaseSighting
from cunan.storage.enums import (
    ConsentMethod,
    PersonCategory,
    PersonStatus,
    TemplateChangeKind,
    TemplateSource,
    UserRole,
)
from cunan.storage.pipeline_tables import Sighting
from cunan.storage.tables import (
    Consent,
    FaceTemplate,
    House,
    Household,
    Landlord,
    Person,
    Room,
    TemplateChange,
    Tenancy,
)

logger = logging.getLogger(__name__)

#: Written into the data dir once the data set is complete; a data dir without it (an
#: interrupted build) is never reused.
MARKER = "bench-api.json"
#: The account the benchmark's clients log in as (village staff: the pages' main users).
STAFF_USER = "bench-staff"
#: Cameras the stored sightings came from (disabled: they exist only in history).
HISTORY_CAMERAS = ("东门", "西门", "南门", "北门")
#: People per house, rooms per house, and people per landlord.
PEOPLE_PER_HOUSE = 10
ROOMS_PER_HOUSE = 6
HOUSES_PER_LANDLORD = 2
#: Shares of the sightings: unknown (grouped into cases) and undecided; the rest are known.
UNKNOWN_SHARE = 0.15
UNDECIDED_SHARE = 0.05
#: Synthetic ID numbers (birth date plus four digits of the person's index) stay unique up to
#: this many people.
MAX_PEOPLE = 10_000
#: Changes when the generated data changes, so a cached data set of older code is rebuilt.
DATA_VERSION = 2
#: Sightings spread over this many days before the build.
HISTORY_DAYS = 30
#: Common surnames and given-name characters: names repeat the way village names do, so a
#: search by surname finds hundreds of people and a full name a handful.
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国红梅玉珍海燕小龙春"

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class ApiDataSpec:
    """What to build; a data dir built from the same spec is reused."""

    people: int = 5000
    sightings: int = 100_000
    cases: int = 2000
    model_id: str = "dlib_resnet_v1"
    dim: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if not 10 <= self.people <= MAX_PEOPLE or self.cases < 1:
            raise ValueError(
                f"the API benchmark needs 10 to {MAX_PEOPLE} people (synthetic ID numbers are "
                "unique up to there) and at least 1 case"
            )
        if int(self.sightings * UNKNOWN_SHARE) < self.cases:
            raise ValueError(
                f"{self.sightings} sightings give {int(self.sightings * UNKNOWN_SHARE)} unknown "
                f"ones, fewer than the {self.cases} cases they must be grouped into"
            )

    def key(self) -> str:
        """A short name for the cache folder of this spec."""
        return (
            f"p{self.people}-s{self.sightings}-c{self.cases}-{self.model_id}-d{self.dim}"
            f"-seed{self.seed}-v{DATA_VERSION}"
        )


@dataclass(frozen=True, slots=True)
class ApiDataset:
    """A built data set: the spec, the staff login, and what the clients ask about."""

    spec: ApiDataSpec
    staff_user: str
    staff_password: str
    first_case_id: int
    last_case_id: int
    #: Synthetic templates: random unit vectors tagged with the engine's model id (they
    #: match no real face, so the live camera's sightings are all unknown or undecided).
    synthetic_templates: bool = True

    def save(self, data_dir: Path) -> None:
        path = data_dir / MARKER
        path.write_text(json.dumps(asdict(self), ensure_ascii=False), encoding="utf-8")
        path.chmod(0o600)  # holds the benchmark account's password

    @classmethod
    def load(cls, data_dir: Path) -> ApiDataset | None:
        """The data set recorded in ``data_dir``, or None when there is none (or unreadable)."""
        path = data_dir / MARKER
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            spec = ApiDataSpec(**raw.pop("spec"))
            return cls(spec=spec, **raw)
        except (OSError, ValueError, TypeError, KeyError):
            return None


def _unit_vectors(rng: np.random.Generator, n: int, dim: int) -> NDArray[np.float32]:
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def _names(rng: np.random.Generator, n: int) -> list[str]:
    surname = rng.integers(0, len(SURNAMES), n)
    first = rng.integers(0, len(GIVEN), n)
    second = rng.integers(0, len(GIVEN), n)
    two = rng.random(n) < 0.7
    return [
        SURNAMES[s] + GIVEN[a] + (GIVEN[b] if t else "")
        for s, a, b, t in zip(surname, first, second, two, strict=True)
    ]


def _id_number(i: int, birth: date) -> str:
    # 330102 (a district code), birth date, a 3-digit sequence and a check character: the
    # last four digits are the index, unique up to MAX_PEOPLE. Not real people's numbers.
    return f"330102{birth:%Y%m%d}{i % 1000:03d}{i // 1000 % 10}"


def _crop_jpeg(rng: np.random.Generator) -> bytes:
    """A small grey JPEG standing in for a face crop (the pages fetch crops separately)."""
    pixels = rng.integers(60, 200, (64, 64), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", pixels)
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return bytes(data.tobytes())


def build_dataset(
    core: CunanApp, spec: ApiDataSpec, *, progress: Progress | None = None
) -> ApiDataset:
    """Write the data set into ``core``'s (initialised, empty) database and return it.

    Registry rows go in through :class:`BulkRepository` in one transaction per table group,
    encrypted as the services encrypt them; one audit entry records the bulk load.
    """
    report = progress or (lambda _stage, _done, _total: None)
    rng = np.random.default_rng(spec.seed)
    cipher = core.registry.service.cipher
    key_id = cipher.active_key_id
    database = core.registry.database
    village_id = core.registry.service.default_village_id()
    now = datetime.now(UTC)
    today = now.date()
    password = secrets.token_urlsafe(18)
    auth = AuthService(database, core.audit, core.settings.web)
    staff = auth.create_user(
        local_principal("bench"), STAFF_USER, password, UserRole.STAFF, display_name="压测员"
    )
    camera_ids = [
        core.cameras.add(
            name,
            f"rtsp://192.0.2.{i + 10}/stream",
            village_id=village_id,
            enabled=False,
            public_notice_posted=True,
        )
        for i, name in enumerate(HISTORY_CAMERAS)
    ]

    n_people = spec.people
    n_houses = max(1, n_people // PEOPLE_PER_HOUSE)
    n_landlords = max(1, n_houses // HOUSES_PER_LANDLORD)
    with database.transaction() as session:
        bulk = BulkRepository(session)
        first = {
            t: bulk.next_id(t)
            for t in (Landlord, House, Room, Household, Person, Consent, Tenancy, FaceTemplate)
        }
        landlords = [
            {
                "id": first[Landlord] + i,
                "village_id": village_id,
                "name": f"房东{i + 1:04d}",
                "phone": f"1380000{i:04d}",
            }
            for i in range(n_landlords)
        ]
        houses = [
            {
                "id": first[House] + i,
                "village_id": village_id,
                "address": f"幸福路{i + 1}号",
                "landlord_id": first[Landlord] + i // HOUSES_PER_LANDLORD % n_landlords,
            }
            for i in range(n_houses)
        ]
        rooms = [
            {
                "id": first[Room] + h * ROOMS_PER_HOUSE + r,
                "house_id": first[House] + h,
                "label": f"{r // 3 + 1}0{r % 3 + 1}",
                "capacity": 2,
            }
            for h in range(n_houses)
            for r in range(ROOMS_PER_HOUSE)
        ]
        households = [
            {"id": first[Household] + h, "house_id": first[House] + h, "name": f"户{h + 1}"}
            for h in range(n_houses)
        ]
        bulk.insert(Landlord, landlords)
        bulk.insert(House, houses)
        bulk.insert(Room, rooms)
        bulk.insert(Household, households)
        report("places", 1, 1)

        # People: 40 % registered residents in their house's household, 60 % tenants
        # renting a room (some with an earlier tenancy they moved out of).
        names = _names(rng, n_people)
        tenant = rng.random(n_people) < 0.6
        births = [
            date(1960, 1, 1) + timedelta(days=int(d)) for d in rng.integers(0, 40 * 365, n_people)
        ]
        people: list[dict[str, object]] = []
        consents: list[dict[str, object]] = []
        tenancies: list[dict[str, object]] = []
        templates: list[dict[str, object]] = []
        changes: list[dict[str, object]] = []
        vectors = _unit_vectors(rng, n_people, spec.dim)
        occupancy = np.zeros(len(rooms), dtype=np.int64)
        for i in range(n_people):
            person_id = first[Person] + i
            house = i // PEOPLE_PER_HOUSE % n_houses
            people.append(
                {
                    "id": person_id,
                    "village_id": village_id,
                    "household_id": None if tenant[i] else first[Household] + house,
                    "name": names[i],
                    "id_number": _id_number(i, births[i]),
                    "phone": f"1390000{i % 10000:04d}",
                    "category": PersonCategory.TENANT if tenant[i] else PersonCategory.RESIDENT,
                    "status": PersonStatus.ACTIVE,
                    "is_minor": False,
                }
            )
            consent_id = first[Consent] + i
            consents.append(
                {
                    "id": consent_id,
                    "person_id": person_id,
                    "collected_by": "网格员(压测)",
                    "collected_at": now - timedelta(days=400),
                    "method": ConsentMethod.PAPER,
                    "scope": DEFAULT_CONSENT_SCOPE,
                }
            )
            template_id = first[FaceTemplate] + i
            templates.append(
                {
                    "id": template_id,
                    "person_id": person_id,
                    "consent_id": consent_id,
                    "model_id": spec.model_id,
                    "dim": spec.dim,
                    "ciphertext": cipher.encrypt(
                        encode_vector(vectors[i]),
                        template_context(template_id, person_id, spec.model_id),
                    ),
                    "key_id": key_id,
                    "source": TemplateSource.ENROLMENT_PHOTO,
                }
            )
            changes.append(
                {
                    "kind": TemplateChangeKind.ADDED,
                    "template_id": template_id,
                    "person_id": person_id,
                    "model_id": spec.model_id,
                }
            )
            if tenant[i]:
                base = house * ROOMS_PER_HOUSE
                room = base + int(np.argmin(occupancy[base : base + ROOMS_PER_HOUSE]))
                occupancy[room] += 1
                room_row = rooms[room]
                landlord_id = houses[house]["landlord_id"]
                move_in = today - timedelta(days=int(rng.integers(1, 700)))
                # Leases run to a date ahead (renewed); one tenant in 50 is past it without
                # a move-out report: the overdue departures a village chases.
                overdue = rng.random() < 0.02 and move_in < today - timedelta(days=30)
                expected_end = (
                    today - timedelta(days=int(rng.integers(1, 30)))
                    if overdue
                    else today + timedelta(days=int(rng.integers(1, 365)))
                )
                if rng.random() < 0.1:
                    # An earlier tenancy in another house, ended before this one began.
                    before = rooms[(room + ROOMS_PER_HOUSE * 7) % len(rooms)]
                    tenancies.append(
                        {
                            "person_id": person_id,
                            "room_id": before["id"],
                            "landlord_id": landlord_id,
                            "move_in": move_in - timedelta(days=400),
                            "move_out": move_in - timedelta(days=30),
                            "reported_by": "bench",
                            "reported_at": now - timedelta(days=500),
                            "move_out_reported_by": "bench",
                            "move_out_reported_at": now - timedelta(days=200),
                        }
                    )
                tenancies.append(
                    {
                        "person_id": person_id,
                        "room_id": room_row["id"],
                        "landlord_id": landlord_id,
                        "move_in": move_in,
                        "expected_end": expected_end,
                        "reported_by": "bench",
                        "reported_at": now - timedelta(days=1),
                    }
                )
        for offset, row in enumerate(tenancies):
            row["id"] = first[Tenancy] + offset
        bulk.insert(Person, people)
        bulk.insert(Consent, consents)
        bulk.insert(Tenancy, tenancies)
        bulk.insert(FaceTemplate, templates)
        bulk.insert(TemplateChange, changes)
        bulk.sync_sequences([Landlord, House, Room, Household, Person, Consent, Tenancy])
        bulk.sync_sequences([FaceTemplate])
        report("people", n_people, n_people)

    first_case, last_case = _sightings_and_cases(
        core,
        spec,
        rng,
        camera_ids=camera_ids,
        person_ids=[first[Person] + i for i in range(n_people)],
        staff_id=staff.id,
        now=now,
        report=report,
    )
    core.audit.record(
        "bench.seed",
        actor="local:bench",
        details={
            "people": spec.people,
            "sightings": spec.sightings,
            "cases": spec.cases,
            "synthetic_templates": True,
        },
    )
    return ApiDataset(
        spec=spec,
        staff_user=STAFF_USER,
        staff_password=password,
        first_case_id=first_case,
        last_case_id=last_case,
    )


def _sightings_and_cases(
    core: CunanApp,
    spec: ApiDataSpec,
    rng: np.random.Generator,
    *,
    camera_ids: Sequence[int],
    person_ids: Sequence[int],
    staff_id: int,
    now: datetime,
    report: Progress,
) -> tuple[int, int]:
    """Sightings over the last :data:`HISTORY_DAYS` days; the unknown ones grouped into
    cases (a few frequent strangers, many seen once or twice). Returns the case id range."""
    cipher = core.registry.service.cipher
    key_id = cipher.active_key_id
    n = spec.sightings
    n_unknown = int(n * UNKNOWN_SHARE)
    n_undecided = int(n * UNDECIDED_SHARE)
    kinds = np.array(["known"] * n, dtype=object)
    order = rng.permutation(n)
    kinds[order[:n_unknown]] = "unknown"
    kinds[order[n_unknown : n_unknown + n_undecided]] = "undecided"
    started = np.sort(rng.uniform(0, HISTORY_DAYS * 86400.0, n))
    moments = [now - timedelta(seconds=HISTORY_DAYS * 86400.0 - float(s)) for s in started]
    cameras = rng.integers(0, len(camera_ids), n)
    crop = _crop_jpeg(rng)
    embeddings = _unit_vectors(rng, n_unknown, spec.dim)

    # Case sizes: every case has one sighting, the rest follow a long tail.
    weights = 1.0 / np.arange(1, spec.cases + 1) ** 0.9
    extra = rng.choice(spec.cases, n_unknown - spec.cases, p=weights / weights.sum())
    case_of = np.concatenate([np.arange(spec.cases), extra])
    rng.shuffle(case_of)

    database = core.registry.database
    village_id = core.registry.service.default_village_id()
    with database.transaction() as session:
        bulk = BulkRepository(session)
        first_sighting = bulk.next_id(Sighting)
        first_case = bulk.next_id(Case)
        rows: list[dict[str, object]] = []
        members: list[dict[str, object]] = []
        unknown_index = 0
        for i in range(n):
            sighting_id = first_sighting + i
            kind = str(kinds[i])
            camera = int(cameras[i])
            name = HISTORY_CAMERAS[camera]
            seen = moments[i]
            row: dict[str, object] = {
                "id": sighting_id,
                "camera_id": camera_ids[camera],
                "camera_name": name,
                "track_key": f"bench-{i}",
                "started_at": seen,
                "ended_at": seen + timedelta(seconds=float(rng.uniform(1.5, 8.0))),
                "decision": kind,
                "person_id": None,
                "distance": None,
                "score": None,
                "faces_used": int(rng.integers(2, 12)),
                "details_json": json.dumps({"synthetic": True}),
                "model_id": spec.model_id,
                "crop_ciphertext": None,
                "embedding_ciphertext": None,
                "key_id": None,
            }
            if kind == "known":
                row["person_id"] = person_ids[int(rng.integers(0, len(person_ids)))]
                row["distance"] = round(float(rng.uniform(0.25, 0.42)), 4)
                row["score"] = round(float(rng.uniform(0.6, 0.95)), 4)
            elif kind == "unknown":
                row["distance"] = round(float(rng.uniform(0.55, 0.8)), 4)
                row["crop_ciphertext"] = cipher.encrypt(crop, crop_context(sighting_id, name))
                row["embedding_ciphertext"] = cipher.encrypt(
                    encode_vector(embeddings[unknown_index]),
                    embedding_context(sighting_id, spec.model_id),
                )
                row["key_id"] = key_id
                members.append(
                    {
                        "sighting_id": sighting_id,
                        "case_id": first_case + int(case_of[unknown_index]),
                        "camera_id": camera_ids[camera],
                        "camera_name": name,
                        "seen_at": seen,
                        "faces_used": row["faces_used"],
                        "distance": None,
                        "alerted": False,
                        "suppressed_by": None,
                    }
                )
                unknown_index += 1
            rows.append(row)
            if (i + 1) % 10_000 == 0:
                report("sightings", i + 1, n)
        bulk.insert(Sighting, rows)
        report("sightings", n, n)

        cases: list[dict[str, object]] = []
        spans: dict[int, list[datetime]] = {}
        for member in members:
            case_id = int(str(member["case_id"]))
            seen_at = member["seen_at"]
            assert isinstance(seen_at, datetime)
            spans.setdefault(case_id, []).append(seen_at)
        first_member: set[int] = set()
        for member in members:
            case_id = int(str(member["case_id"]))
            if case_id not in first_member:
                first_member.add(case_id)
                member["alerted"] = True  # the sighting that opened the case
        statuses = rng.choice(["open", "assigned", "closed"], spec.cases, p=[0.55, 0.2, 0.25])
        for c in range(spec.cases):
            case_id = first_case + c
            span = spans[case_id]
            status = str(statuses[c])
            row = {
                "id": case_id,
                "status": status,
                "model_id": spec.model_id,
                "village_id": village_id,
                "opened_at": span[0],
                "first_seen_at": span[0],
                "last_seen_at": span[-1],
                "sightings_count": len(span),
                "version": len(span),
                "updated_at": span[-1],
            }
            if status in ("assigned", "closed"):
                row.update(
                    assigned_to=staff_id,
                    assigned_by="local:bench",
                    assigned_at=span[0] + timedelta(hours=2),
                    deadline_at=span[0] + timedelta(days=3),
                )
            if status == "closed":
                row.update(
                    outcome="escalate",
                    outcome_by="local:bench",
                    outcome_at=span[-1] + timedelta(hours=1),
                    escalation_reason="压测数据 (synthetic)",
                    closed_at=span[-1] + timedelta(hours=1),
                )
            cases.append(row)
        bulk.insert(Case, cases)
        bulk.insert(CaseSighting, members)
        bulk.sync_sequences([Sighting, Case])
        report("cases", spec.cases, spec.cases)
    return first_case, first_case + spec.cases - 1
