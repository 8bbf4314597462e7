"""Fixtures shared by the integration tests: SDL with pygame, and an SDL virtual pad."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from types import ModuleType

import pytest

from guest.sdl import SDL, init_pygame, load_sdl
from guest.virtual import VirtualPad
from tests.support.guest_proc import HEADLESS


@pytest.fixture(scope="module")
def sdl_pair() -> Iterator[tuple[ModuleType, SDL]]:
    """pygame initialised headless, and the SDL library it loaded."""
    for key, value in HEADLESS.items():
        os.environ.setdefault(key, value)
    pygame = init_pygame()
    yield pygame, load_sdl(pygame)
    pygame.quit()


@pytest.fixture
def pad(sdl_pair: tuple[ModuleType, SDL]) -> Iterator[VirtualPad]:
    """An attached SDL virtual game controller, detached at the end."""
    pygame, sdl = sdl_pair
    virtual = VirtualPad(sdl)
    virtual.attach()
    yield virtual
    virtual.detach()
    with contextlib.suppress(SystemError):  # pygame's hiccup when a device comes and goes
        pygame.event.get()


@pytest.fixture
def session_name(request: pytest.FixtureRequest) -> str:
    """A session name of this test's own (the relay's topic prefix is fixed: ``coplay``)."""
    return f"s{abs(hash(request.node.nodeid)) % 10**9}"
