"""The lesson scripts promise to run with nothing installed but Python."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def test_lesson_modules_import_only_the_standard_library() -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import racefree, racefree.scenarios.lesson01, racefree.scenarios.script,"
        " racefree.scenarios.demo, racefree.scenarios.lesson02, racefree.report.terminal;"
        "top = {m.split('.')[0] for m in sys.modules};"
        "print(sorted(top - set(sys.stdlib_module_names) - {'racefree', '__main__'}))"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(SRC)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"
