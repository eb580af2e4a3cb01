"""Run lesson scripts as a learner does: from the lesson folder, nothing installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_script_in(lesson: str, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``examples/<lesson>/<name>.py`` from its folder with no site-packages at all."""
    return subprocess.run(
        [sys.executable, "-E", "-s", "-S", f"{name}.py", *args],
        cwd=EXAMPLES / lesson,
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_json_in(lesson: str, name: str, *args: str) -> dict[str, Any]:
    """Run a lesson script with ``--json``; check the documented keys; return the object."""
    done = run_script_in(lesson, name, "--json", *args)
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    for key in ("scenario", "agents", "wall_seconds", "expected", "actual"):
        assert key in data
    for key in ("lost_updates", "consistent"):
        assert key in data
    return data
