"""`racefree demo` from an installed wheel runs the course the wheel ships (racefree/_course)."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_an_installed_wheel_carries_the_course_and_its_demo_runs_it(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)]
    subprocess.run(build, check=True, capture_output=True, timeout=300)
    [wheel] = wheels.glob("racefree-*.whl")
    venv.create(tmp_path / "env", with_pip=True)
    python = tmp_path / "env" / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=300)
    where = subprocess.run(
        [
            str(python),
            "-I",
            "-c",
            "from racefree.scenarios import course; print(course.course_dir())",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(tmp_path / "env")  # the installed copy, not the clone
    assert where.endswith(str(Path("racefree") / "_course"))
    demo = subprocess.run(
        [str(python), "-I", "-m", "racefree", "demo", "--json", "--time-scale", "0.01"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stderr
    scenarios = [r["scenario"] for r in json.loads(demo.stdout)["results"]]
    assert scenarios[:7] == ["broken_sequential", *["broken_parallel"] * 5, "simple_fix"]
