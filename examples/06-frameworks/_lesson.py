"""Lets the lesson scripts run from a fresh clone.

It puts the clone's ``src`` first on ``sys.path``, so that ``import racefree``
finds ``racefree.integrations``. (Installed from a wheel, racefree is already
importable and this does nothing.) The frameworks themselves come from the
extras: ``pip install racefree[langgraph,openai-agents,adk]``.
"""

import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
if (SRC / "racefree").is_dir() and str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))
