"""Event loops: uvloop where installed, the standard loop when asked."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

import errands
from errands.loops import new_event_loop
from errands.settings import Settings


@pytest.mark.parametrize(
    ("kind", "expected"), [("auto", uvloop.Loop), ("uvloop", uvloop.Loop), ("asyncio", None)]
)
def test_each_kind_gives_its_loop(kind: str, expected: type | None) -> None:
    loop = new_event_loop(kind)
    try:
        if expected is None:
            assert not isinstance(loop, uvloop.Loop)
            assert isinstance(loop, asyncio.AbstractEventLoop)
        else:
            assert isinstance(loop, expected)
    finally:
        loop.close()


def test_an_unknown_kind_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match=r"auto, uvloop, asyncio.*'tokio'"):
        new_event_loop("tokio")


def test_the_apps_portal_runs_the_loop_its_settings_name() -> None:
    standard = errands.App("memory://", settings=Settings(broker_url="memory://", loop="asyncio"))
    default = errands.App("memory://")
    try:
        assert not isinstance(standard.portal.loop, uvloop.Loop)
        assert isinstance(default.portal.loop, uvloop.Loop)
        assert Settings.from_env({"ERRANDS_LOOP": "asyncio"}).loop == "asyncio"
    finally:
        standard.close()
        default.close()
