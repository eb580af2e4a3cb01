"""Helpers for the tests of threads and primitives the explorer does not own.

``installed_library(tmp_path)`` writes a small library into a folder named
``site-packages`` and imports it, so that its frames are library frames, as
those of a package installed with pip are. It does what tracing exporters and
event buses do: it starts a daemon thread with its own event loop the first
time it is used, and keeps it (and its lock) in module globals.
"""

from __future__ import annotations

import _thread
import importlib
import sys
import textwrap
import threading
from pathlib import Path
from types import ModuleType

LIBRARY = '''
"""A library that starts its own background machinery lazily (as an exporter does)."""
import asyncio
import threading
import time

_bus = None
_lock = None


def lock():
    """A module-level lock, made on first use (the common library idiom)."""
    global _lock
    if _lock is None:
        _lock = threading.Lock()
    return _lock


class Bus:
    """An event bus: a daemon thread runs its own event loop; emit() waits for the handler."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.seen = []
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="fakelib-bus", daemon=True
        )
        self.thread.start()

    def emit(self, event):
        async def handle():
            await asyncio.sleep(0.001)  # real time: this loop is not the explorer's
            with lock():
                self.seen.append(event)
            return len(self.seen)

        return asyncio.run_coroutine_threadsafe(handle(), self.loop).result(timeout=10)

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def bus():
    global _bus
    if _bus is None:
        _bus = Bus()
    return _bus


def in_background(fn, name="fakelib-worker", daemon=False):
    """Start fn in a thread of the library's own (a non-daemon one by default)."""
    thread = threading.Thread(target=fn, name=name, daemon=daemon)
    thread.start()
    return thread


_exporter = None


class Exporter:
    """A tracing exporter: a daemon thread that polls its queue for spans, forever."""

    def __init__(self):
        self.spans = []
        self.exported = []
        self.thread = threading.Thread(target=self._poll, name="fakelib-exporter", daemon=True)
        self.thread.start()

    def _poll(self):
        while True:
            time.sleep(0.005)
            with lock():
                self.exported.extend(self.spans)
                self.spans.clear()

    def record(self, span):
        with lock():
            self.spans.append(span)


def exporter():
    global _exporter
    if _exporter is None:
        _exporter = Exporter()
    return _exporter


def clock_seen_by_worker():
    """time.time() as a thread that the library starts sees it."""
    seen = []
    in_background(lambda: seen.append(time.time())).join()
    return seen[0]
'''


def installed_library(tmp_path: Path, name: str) -> ModuleType:
    """Import a fresh copy of the fake library from ``tmp_path/site-packages/<name>.py``."""
    folder = tmp_path / "site-packages"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(LIBRARY), encoding="utf-8")
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


def wait_for_threads(count: int) -> int:
    """Wait (for a state, up to 10 s) until the process runs ``count`` threads again;
    return how many it runs (threads end a moment after their last Python line)."""
    pause = threading.Event()
    for _ in range(1000):
        if _thread._count() <= count:
            break
        pause.wait(0.01)
    return _thread._count()
