"""``cunan calibrate``: the site's expected false-known rate and thresholds, in plain words."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import typer
from rich.console import Console

from cunan.cliutil import DataDirOption, opened_app
from cunan.config import Settings
from cunan.matching.adaptive import SiteEstimate, estimate_site, prior_for_model
from cunan.matching.live import TemplateSource

console = Console()


@dataclass(frozen=True, slots=True)
class SiteCalibration:
    """The data of the settings page's calibration panel, and of ``cunan calibrate``."""

    model_id: str
    estimate: SiteEstimate
    configured_target: float

    def words(self) -> list[str]:
        """What the numbers mean for an administrator, Chinese first, one sentence a line."""
        e = self.estimate
        t = e.for_target
        lines = []
        if e.current_rate is None:
            lines.append(
                f"已登记 {e.people} 人，人数太少，无法用本村的数据估计误认率；"
                f"门槛暂时采用内置的东亚参考人群数据。"
                f" ({e.people} people enrolled: too few to measure the site's false-known rate; "
                f"the thresholds come from the built-in East Asian reference for now.)"
            )
        else:
            per_100 = 100 * e.current_rate
            zh, en = (
                ("不到 0.1", "fewer than 0.1")
                if per_100 < 0.1
                else (f"约有 {per_100:.1f}", f"about {per_100:.1f}")
            )
            lines.append(
                f"按当前设置，估计每 100 个陌生人中{zh} 个会被误认为已登记的人"
                f"（依据本村已登记的 {e.people} 人估计）。"
                f" (With the current settings, {en} in 100 strangers would be "
                f"taken for an enrolled person, estimated from the {e.people} people enrolled.)"
            )
        target = 100 * e.target
        if e.adaptive and e.target == self.configured_target:
            how = (
                "系统已按这个目标自动校准，无需改动。"
                " (The system calibrates itself for this target; nothing to change.)"
            )
        elif e.adaptive:
            how = (
                f"系统已按目标 {100 * self.configured_target:.1f} % 自动校准；"
                f"要改为 {target:.1f} %，请把 matching.adaptive_target 设为 {e.target:g}。"
                f" (The system calibrates itself for {100 * self.configured_target:.1f} %; for "
                f"{target:.1f} % set matching.adaptive_target = {e.target:g}.)"
            )
        else:
            how = (
                f"自适应校准已关闭；要达到 {target:.1f} %，可打开 matching.adaptive，"
                f"并把 matching.adaptive_target 设为 {e.target:g}。"
                f" (Adaptive calibration is off; to reach {target:.1f} %, turn on "
                f"matching.adaptive with matching.adaptive_target = {e.target:g}.)"
            )
        population = ""
        if t.fallback_population_distance is not None:
            population = f"，且东亚人群距离不超过 {t.fallback_population_distance:.3f}"
        lines.append(
            f"要把误认率控制在 {target:.1f} % 以内：相似度分数门槛 {t.min_score:.3f}；"
            f"只登记 1 人时，距离门槛 {t.fallback_max_distance:.3f}{population}。"
            f" (To keep the false-known rate within {target:.1f} %: score threshold "
            f"{t.min_score:.3f}; with one person enrolled, distance threshold "
            f"{t.fallback_max_distance:.3f}"
            + (
                f" and East Asian population distance {t.fallback_population_distance:.3f}"
                if t.fallback_population_distance is not None
                else ""
            )
            + ".)"
        )
        lines.append(how)
        return lines

    def as_json(self) -> dict[str, object]:
        e = self.estimate
        return {
            "model_id": self.model_id,
            "people": e.people,
            "templates": e.templates,
            "stand_ins": e.stand_ins,
            "adaptive": e.adaptive,
            "configured_target": self.configured_target,
            "current_min_score": None
            if e.current_min_score is None
            else round(e.current_min_score, 4),
            "expected_false_known_rate": None
            if e.current_rate is None
            else round(e.current_rate, 4),
            "target": e.target,
            "thresholds_for_target": e.for_target.as_details(),
            "words": self.words(),
        }


def site_calibration(
    source: TemplateSource,
    settings: Settings,
    *,
    model_id: str,
    target: float | None = None,
) -> SiteCalibration:
    """Expected false-known rate at the current settings and thresholds for ``target``.

    ``target`` defaults to ``matching.adaptive_target``. Reads every template of
    ``model_id`` (decrypted in memory only); changes nothing.
    """
    by_person: dict[int, list[np.ndarray[tuple[int], np.dtype[np.float32]]]] = {}
    for batch in source.iter_templates(model_id=model_id):
        for t in batch:
            by_person.setdefault(t.person_id, []).append(np.asarray(t.vector, np.float32))
    people = sorted(by_person)
    rows = [v for p in people for v in by_person[p]]
    vectors = np.vstack(rows).astype(np.float32) if rows else np.zeros((0, 128), np.float32)
    counts = np.asarray([len(by_person[p]) for p in people], dtype=np.int64)
    starts = (np.cumsum(counts) - counts).astype(np.int64)
    matching = settings.matching
    wanted = matching.adaptive_target if target is None else target
    estimate = estimate_site(
        vectors,
        starts,
        matching.open_set_config(),
        wanted,
        adaptive=matching.adaptive_config(),
        prior=prior_for_model("east_asian", model_id, vectors.shape[1]),
    )
    return SiteCalibration(
        model_id=model_id, estimate=estimate, configured_target=matching.adaptive_target
    )


def calibrate_command(
    data_dir: DataDirOption = None,
    target: Annotated[
        float | None,
        typer.Option(
            "--target",
            min=0.0001,
            max=0.5,
            help="False-known rate to give thresholds for (default: matching.adaptive_target, "
            "0.01 = 1 stranger in 100).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """误认率估计与门槛 / Expected false-known rate of this site's gallery, and thresholds."""
    with opened_app(data_dir) as (_, services):
        report = services.calibration(target)
    if as_json:
        print(json.dumps(report.as_json(), ensure_ascii=False))
        return
    for line in report.words():
        console.print(line, markup=False, highlight=False, soft_wrap=True)
