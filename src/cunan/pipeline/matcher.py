"""Matching best-shot embeddings against the registry's templates (the open-set rules)."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from cunan.domain import FaceQuality
from cunan.matching.index import DEFAULT_ANN_THRESHOLD, IndexKind, IndexSpec
from cunan.matching.live import LiveGallery
from cunan.matching.openset import OpenSetConfig, OpenSetDecision
from cunan.registry.records import Vector
from cunan.registry.service import RegistryService

logger = logging.getLogger(__name__)


class FaceMatcher(Protocol):
    """1:N open-set decisions for a few probe embeddings of one model."""

    @property
    def model_id(self) -> str: ...

    def decide(
        self, vectors: NDArray[np.float32], qualities: Sequence[FaceQuality | None]
    ) -> list[OpenSetDecision]: ...


def empty_gallery_decision(config: OpenSetConfig) -> OpenSetDecision:
    return OpenSetDecision(
        decision="unknown",
        identity=None,
        distance=math.inf,
        runner_up_identity=None,
        runner_up_distance=math.inf,
        margin=math.nan,
        score=math.nan,
        normalisation=config.normalisation,
        reasons=("gallery is empty",),
    )


class RegistryGalleryMatcher:
    """The registry's templates of one model, matched through the live gallery.

    Identity labels are person ids (as strings). Changes arrive in-process through the
    :class:`~cunan.registry.records.TemplateListener` methods and apply at once; changes
    made by another process (the UI, an import) are read from the registry's change feed,
    polled every ``poll_interval_s``. The decisions are those of
    :class:`cunan.matching.live.LiveGallery`, the same path as ``cunan identify``, so a
    face gets one answer whichever part of the system asks.
    """

    def __init__(
        self,
        registry: RegistryService,
        model_id: str,
        config: OpenSetConfig | None = None,
        *,
        index_kind: IndexKind = "auto",
        ann_threshold: int = DEFAULT_ANN_THRESHOLD,
        poll_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        index_spec: IndexSpec | None = None,
    ) -> None:
        self._registry = registry
        self._model_id = model_id
        self.config = config or OpenSetConfig()
        self._index_kind: IndexKind = index_kind
        self._ann_threshold = ann_threshold
        #: The site's index choice (matching.*, external indexes included), if given.
        self._index_spec = index_spec
        self._poll_interval_s = poll_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._live: LiveGallery | None = None
        self._last_poll = -math.inf

    @property
    def model_id(self) -> str:
        return self._model_id

    # -- TemplateListener --------------------------------------------------------------------

    def on_added(self, template_id: int, person_id: int, vector: Vector, model_id: str) -> None:
        with self._lock:
            if self._live is not None:
                self._live.on_added(template_id, person_id, vector, model_id)

    def on_removed(self, template_ids: list[int]) -> None:
        with self._lock:
            if self._live is not None:
                self._live.on_removed(template_ids)

    # -- matching ----------------------------------------------------------------------------

    def _gallery(self, dim: int) -> LiveGallery:
        now = self._clock()
        with self._lock:
            if self._live is None:
                # Loaded on first use: the embedding size is known from the first probe.
                self._live = LiveGallery.load(
                    self._registry,
                    model_id=self._model_id,
                    dim=dim,
                    config=self.config,
                    index_kind=self._index_kind,
                    ann_threshold=self._ann_threshold,
                    spec=self._index_spec,
                )
                self._last_poll = now
                logger.info(
                    "gallery of model %s loaded: %d templates of %d people",
                    self._model_id,
                    len(self._live),
                    self._live.people,
                )
            elif now - self._last_poll >= self._poll_interval_s:
                self._last_poll = now
                self._live.catch_up(self._registry)
            return self._live

    def decide(
        self, vectors: NDArray[np.float32], qualities: Sequence[FaceQuality | None]
    ) -> list[OpenSetDecision]:
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(vectors) == 0:
            return []
        gallery = self._gallery(int(vectors.shape[1]))
        if len(gallery) == 0:
            return [empty_gallery_decision(self.config) for _ in range(len(vectors))]
        results = gallery.identify(vectors, qualities=list(qualities))
        return [r.decision for r in results]
