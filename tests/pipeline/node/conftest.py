"""Fixtures of the node tests: a node on an ephemeral loopback port with the fake workflow."""

from __future__ import annotations


import pytest

import node_factory as fac

from node_helpers import HERE, Harness, wait_for, write_config  # noqa: F401


@pytest.fixture(scope="session")
def receiver():
    """One PACS stand-in for the whole session (its shutdown costs half a second)."""
    started = fac.Receiver().start()
    yield started
    started.stop()


@pytest.fixture
def harness(tmp_path, receiver):
    made = []
    receiver.received.clear()

    def make(**extra) -> Harness:
        h = Harness(tmp_path, receiver, **extra)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()
