"""What the server-backed index tests share: a fresh index per check, closed afterwards."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Protocol

from tests.matching.test_index import MODEL, MakeIndex

from cunan.matching.index import GalleryIndex

_models = itertools.count()


class ClosableIndex(GalleryIndex, Protocol):
    def close(self) -> None: ...


def fresh_indexes(create: Callable[[str], ClosableIndex]) -> Iterator[MakeIndex]:
    """Yield a factory of indexes, each under a model id of its own (a fresh table or
    collection, so every check starts from an empty gallery); close them all afterwards."""
    made: list[ClosableIndex] = []

    def factory() -> GalleryIndex:
        index = create(f"{MODEL}_{next(_models)}")
        made.append(index)
        return index

    yield factory
    for index in made:
        index.close()


def run_contract_check(
    make: MakeIndex, check: Callable[[MakeIndex], None], *, concurrent_rounds: int
) -> None:
    """Run one check of test_index.ALL_CHECKS; a server backend gets fewer concurrent rounds
    (each is a round trip)."""
    if check.__name__ == "check_concurrent":
        check(make, concurrent_rounds)  # type: ignore[call-arg]
    else:
        check(make)
