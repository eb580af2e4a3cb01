"""Lets the lesson scripts run from a fresh clone with nothing installed.

The lesson workloads live once, in ``src/racefree/scenarios``, shared with
``racefree demo``; this puts the clone's ``src`` first on ``sys.path``.
"""

import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
if (SRC / "racefree").is_dir() and str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))
