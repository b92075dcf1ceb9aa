"""gateway/core/heap.py: the long-lived heap is frozen out of the collector's full passes, and a reload
thaws it so the old config's reference cycles can still be collected."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from gateway.core import heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cycle collector frees it


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    yield
    gc.unfreeze()  # leave the test process as it was


def test_a_frozen_cycle_survives_full_passes_until_the_next_freeze() -> None:
    node = Node()
    ref = weakref.ref(node)
    heap.freeze_long_lived()
    assert gc.get_freeze_count() > 0
    del node
    gc.collect()
    assert ref() is not None, "frozen objects are out of the collector's sight"
    heap.freeze_long_lived()  # what a config reload does
    assert ref() is None
    assert gc.get_freeze_count() > 0  # and what is alive is frozen again
