"""Returning free heap pages to the OS: reaches glibc's malloc_trim on Linux."""

from __future__ import annotations

import platform
import sys

import pytest

from cunan.pipeline.heap import libc, trim_heap


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="malloc_trim is glibc's",
)
def test_trim_heap_reaches_glibc() -> None:
    assert libc() is not None
    assert trim_heap() is True
