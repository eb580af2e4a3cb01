"""Lets the lesson scripts run from a fresh clone, and picks the store they share.

Puts the clone's ``src`` first on ``sys.path`` (the workloads live once, in
``src/racefree/scenarios``). ``STORE_OPTION`` is this lesson's own option,
``--store URL``; ``shared_store`` turns it into the URL the worker processes
open: the one given, else Redis at ``REDIS_URL`` when that is set and
answers, else a SQLite file in a temporary folder (one machine), deleted when
the run ends. ``script_errors`` turns racefree's errors (a bad URL, a store
that cannot be reached or written) into one line on stderr and exit status 2.
"""

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
if (SRC / "racefree").is_dir() and str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

HOW_TO_GET_REDIS = (
    "No Redis: using a temporary SQLite file instead (same guarantees on one machine; "
    "deleted when the run ends). For Redis, "
    "start one (docker run -p 6379:6379 redis, or redis-server) and pass "
    "--store redis://127.0.0.1:6379/0 or set REDIS_URL."
)

#: ``--store URL`` for ``parse_lesson_args(..., extra_text=STORE_OPTION)``.
STORE_OPTION = {
    "store": (
        "URL",
        "the store the worker processes share: sqlite:///agents.db (one machine) or "
        "redis://host:port/0 (many machines); default: Redis at REDIS_URL when it is set "
        "and answers, else a SQLite file in a temporary folder, deleted afterwards",
    )
}


def _redis_from_env() -> str | None:
    url = os.environ.get("REDIS_URL")
    if not url:
        return None
    import racefree

    try:
        racefree.open_store(url).close()
    except racefree.RacefreeError:
        return None
    return url


@contextmanager
def shared_store(store: str | None, *, quiet: bool = False) -> Iterator[str]:
    """The URL to use: ``store`` if given, else Redis, else a temporary SQLite file.

    The temporary folder is deleted when the block ends; a ``store`` the user
    gave is never touched. Unless ``quiet``, the fallback to SQLite says so.
    """
    if store is not None:
        yield store
        return
    url = _redis_from_env()
    if url is not None:
        yield url
        return
    if not quiet:
        if os.environ.get("REDIS_URL"):
            print("REDIS_URL is set, but no Redis answers there.", end=" ")
        print(HOW_TO_GET_REDIS)
    folder = tempfile.mkdtemp(prefix="racefree-05-")
    try:
        yield f"sqlite:///{Path(folder) / 'agents.db'}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def script_errors() -> Iterator[None]:
    """A ``RacefreeError`` becomes ``<script>: error: <message>`` on stderr and exit 2."""
    import racefree

    try:
        yield
    except racefree.RacefreeError as exc:
        print(f"{Path(sys.argv[0]).name}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
