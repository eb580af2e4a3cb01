"""Frameworks are optional: racefree.integrations imports none of them until asked."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_integrations_package_imports_no_framework() -> None:
    code = (
        "import sys, racefree, racefree.integrations;"
        "print(sorted(m for m in ('agents', 'langgraph', 'google.adk', 'langchain_core')"
        " if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
