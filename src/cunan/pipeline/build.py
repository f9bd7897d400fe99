"""Builds a camera's runner from the settings and an opened registry (the pipeline's wiring)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from cunan.capture.reader import BackoffPolicy
from cunan.capture.sources import SourceConfig
from cunan.config import Settings
from cunan.faces.embed import DlibResnetEmbedder, Embedder, OnnxEmbedder, OnnxModelSpec
from cunan.faces.video_detector import BlazeFaceDetector, TileScheduler
from cunan.matching.openset import OpenSetConfig
from cunan.pipeline.cameras import CameraRecord
from cunan.pipeline.events import EventBus
from cunan.pipeline.matcher import RegistryGalleryMatcher
from cunan.pipeline.runner import CameraRunner, CameraTarget, DecidedSighting, TrackAnalyser
from cunan.pipeline.store import SightingStore
from cunan.registry.datadir import Registry

logger = logging.getLogger(__name__)

#: Native libraries' thread pools: one thread each, so one camera process uses one core.
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def limit_threads() -> None:
    """One thread per native pool in this process (and the processes it spawns)."""
    for name in THREAD_ENV:
        os.environ.setdefault(name, "1")
    import cv2

    cv2.setNumThreads(1)


def build_embedder(settings: Settings) -> Embedder:
    """The same embedding model enrolment uses (its vectors are compared with the templates)."""
    faces = settings.faces
    if faces.onnx_model is not None:
        return OnnxEmbedder(OnnxModelSpec(path=faces.onnx_model), threads=1)
    return DlibResnetEmbedder(runtime=faces.embed_runtime, threads=1)


def target_for_camera(camera: CameraRecord, *, realtime: bool = True) -> CameraTarget:
    s = camera.settings
    return CameraTarget(
        name=camera.name,
        camera_id=camera.id,
        source=SourceConfig(
            camera.stream_url,
            rtsp_transport=s.rtsp_transport,
            open_timeout_s=s.open_timeout_s,
            read_timeout_s=s.read_timeout_s,
            realtime=realtime,
        ),
        zone=camera.zone,
        fps_cap=s.fps_cap,
        decision=s.decision(),
    )


def build_runner(
    registry: Registry,
    settings: Settings,
    target: CameraTarget,
    *,
    camera: CameraRecord | None = None,
    bus: EventBus | None = None,
    on_sighting: Callable[[DecidedSighting], None] | None = None,
    backoff: BackoffPolicy | None = None,
    openset: OpenSetConfig | None = None,
    embedder: Embedder | None = None,
) -> CameraRunner:
    """A runner for ``target`` matching against ``registry``'s templates."""
    limit_threads()
    tiling = camera.settings.tiling() if camera is not None else None
    detector = TileScheduler(BlazeFaceDetector(tiling=tiling, num_threads=1))
    embedder = embedder or build_embedder(settings)
    # The site's matching settings decide, unless a caller (a test, a benchmark) overrides.
    matcher = RegistryGalleryMatcher(
        registry.service,
        embedder.model_id,
        openset or settings.matching.open_set_config(),
        index_spec=settings.matching.index_spec(settings.database_url),
    )
    registry.service.add_listener(matcher)
    # One gate for both: the selector ranks judgeable faces first and marks them good,
    # and only good faces decide (a track of poor faces stays undecided).
    quality = settings.faces.sighting_quality.thresholds()
    analyser = TrackAnalyser(embedder, matcher, target.decision, thresholds=quality)
    store = SightingStore(registry.database, registry.service.cipher)
    return CameraRunner(
        target,
        detector=detector,
        analyser=analyser,
        store=store,
        bus=bus,
        backoff=backoff,
        on_sighting=on_sighting,
        quality=quality,
    )
