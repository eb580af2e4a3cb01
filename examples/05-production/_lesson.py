"""Lets the lesson scripts run from a fresh clone, and picks the store they share.

Puts the clone's ``src`` first on ``sys.path`` (the workloads live once, in
``src/racefree/scenarios``). ``store_from_argv`` takes this lesson's own
option, ``--store URL``, out of the command line: by default Redis at
``REDIS_URL`` when that is set and answers, else a SQLite file (one machine).
"""

import os
import sys
import tempfile
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
if (SRC / "racefree").is_dir() and str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

HOW_TO_GET_REDIS = (
    "No Redis: using a SQLite file instead (same guarantees on one machine). For Redis, "
    "start one (docker run -p 6379:6379 redis, or redis-server) and pass "
    "--store redis://127.0.0.1:6379/0 or set REDIS_URL."
)


def store_from_argv() -> str:
    """The ``--store URL`` given (removed from sys.argv), else Redis, else a SQLite file."""
    if "--store" in sys.argv:
        at = sys.argv.index("--store")
        if at + 1 >= len(sys.argv):
            sys.exit("error: --store needs a URL, such as sqlite:///agents.db")
        url = sys.argv[at + 1]
        del sys.argv[at : at + 2]
        return url
    url = os.environ.get("REDIS_URL")
    if url:
        try:
            import racefree

            racefree.open_store(url).close()
            return url
        except racefree.RacefreeError:
            pass
    if "--json" not in sys.argv:
        print(HOW_TO_GET_REDIS)
    return f"sqlite:///{Path(tempfile.mkdtemp(prefix='racefree-05-')) / 'agents.db'}"
