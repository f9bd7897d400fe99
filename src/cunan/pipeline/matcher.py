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
from cunan.matching.openset import Gallery, OpenSetConfig, OpenSetDecision, decide_many
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
    """An exact in-memory gallery of the registry's templates of one model.

    Identity labels are person ids (as strings). The gallery is rebuilt lazily, on the next
    ``decide``, after a template change: told in-process through the
    :class:`~cunan.registry.records.TemplateListener` methods, or seen in the registry's
    change feed (polled every ``poll_interval_s``, because the UI or another process may
    enrol people while a worker process runs).
    """

    def __init__(
        self,
        registry: RegistryService,
        model_id: str,
        config: OpenSetConfig | None = None,
        *,
        poll_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._model_id = model_id
        self.config = config or OpenSetConfig()
        self._poll_interval_s = poll_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._gallery: Gallery | None = None
        self._dirty = True
        self._seen_seq = -1
        self._last_poll = -math.inf
        self.rebuilds = 0

    @property
    def model_id(self) -> str:
        return self._model_id

    # -- TemplateListener --------------------------------------------------------------------

    def on_added(self, template_id: int, person_id: int, vector: Vector, model_id: str) -> None:
        if model_id == self._model_id:
            with self._lock:
                self._dirty = True

    def on_removed(self, template_ids: list[int]) -> None:
        with self._lock:
            self._dirty = True

    # -- matching ----------------------------------------------------------------------------

    def gallery(self) -> Gallery | None:
        """The current gallery (None while no template of the model is enrolled)."""
        now = self._clock()
        with self._lock:
            if now - self._last_poll >= self._poll_interval_s:
                self._last_poll = now
                seq = self._registry.last_change_seq()
                if seq != self._seen_seq:
                    self._dirty = True
                    self._seen_seq = seq
            if self._dirty:
                self._gallery = self._build()
                self._dirty = False
                self.rebuilds += 1
            return self._gallery

    def _build(self) -> Gallery | None:
        vectors: list[Vector] = []
        labels: list[str] = []
        for batch in self._registry.iter_templates(model_id=self._model_id):
            for template in batch:
                vectors.append(template.vector)
                labels.append(str(template.person_id))
        logger.info(
            "gallery of model %s rebuilt: %d templates of %d people",
            self._model_id,
            len(vectors),
            len(set(labels)),
        )
        if not vectors:
            return None
        return Gallery.build(np.stack(vectors), labels, model_id=self._model_id)

    def decide(
        self, vectors: NDArray[np.float32], qualities: Sequence[FaceQuality | None]
    ) -> list[OpenSetDecision]:
        gallery = self.gallery()
        if gallery is None:
            return [empty_gallery_decision(self.config) for _ in range(len(vectors))]
        return decide_many(gallery, vectors, self.config, qualities=list(qualities))
