"""Replays load the workflow and invariants the exploration ran, in a fresh process.

Each exploration and each replay here runs as a user runs it: ``python script.py``
or ``racefree ...`` in a subprocess, from the folder the user works in. The
workflows lose an update in a plain dict (no tracked state), so only the
invariant can catch it: a replay that lost the invariant would pass, not fail.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

RACEFREE = [sys.executable, "-m", "racefree"]

LOSE_AN_UPDATE = """
import threading
import time


def bump(agents):
    state = {"n": 0}

    def agent():
        seen = state["n"]
        time.sleep(0.1)  # the model call: another agent may run meanwhile
        state["n"] = seen + 1

    threads = [threading.Thread(target=agent) for _ in range(agents)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return state
"""

SCRIPT_TOP = """
import argparse

import racefree
from agents_lib import bump  # a module beside the script, as python script.py finds it

parser = argparse.ArgumentParser()
parser.add_argument("--agents", type=int, default=2)
args = parser.parse_args()


def plain_workflow():
    return bump(args.agents)


def all_counted(state):
    assert state["n"] == args.agents, f"{args.agents - state['n']} of {args.agents} lost"
"""

EXPLORE = """
result = racefree.explore(plain_workflow, invariants=[all_counted])
print(result.report())
print("THE SCRIPT'S OWN MAIN WORK")
"""

PACKAGE = {
    "relib/__init__.py": "",
    "relib/flows.py": LOSE_AN_UPDATE
    + """

def two_agents():
    return bump(2)


def all_counted(state):
    assert state["n"] == 2, f"{2 - state['n']} of 2 lost"


def anything_goes(state):
    return True


class Flows:
    @staticmethod
    def run():
        return bump(2)


Flows.run.invariants = [all_counted]
""",
    # The re-export a user points at: the invariants are attached here, not in flows.
    "relib/cli.py": """
from relib.flows import all_counted
from relib.flows import two_agents as workflow

workflow.invariants = [all_counted]
""",
}


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)


def replay_line(stdout: str) -> list[str]:
    """The printed command (the line after "Reproduce it exactly with:") as arguments
    for this Python."""
    lines = stdout.splitlines()
    command = shlex.split(lines[lines.index("Reproduce it exactly with:") + 1])
    assert command[:2] == ["racefree", "replay"], stdout
    return [*RACEFREE, *command[1:]]


def failure_title(stdout: str) -> str:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if " failed on schedule " in line)
    return lines[start + 2]


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.mark.parametrize("main_block", [True, False], ids=["under-if-main", "explore-at-top-level"])
def test_a_script_workflow_replays_by_the_printed_command(tmp_path: Path, main_block: bool) -> None:
    explore = textwrap.indent(EXPLORE, "    ") if main_block else EXPLORE
    main = 'if __name__ == "__main__":\n' if main_block else ""
    write(
        tmp_path,
        {
            "scripts/agents_lib.py": LOSE_AN_UPDATE,
            "scripts/my_test.py": SCRIPT_TOP + main + explore,
        },
    )
    found = run([sys.executable, "scripts/my_test.py", "--agents", "3"], tmp_path)
    assert found.returncode == 0, found.stderr
    title = failure_title(found.stdout)
    assert title.startswith("Invariant all_counted failed: ") and title.endswith(" of 3 lost")
    replay = replay_line(found.stdout)
    data = json.loads((tmp_path / replay[-1]).read_text(encoding="utf-8"))
    assert data["workflow"] == "scripts/my_test.py:plain_workflow"
    assert data["invariants"] == ["scripts/my_test.py:all_counted"]
    assert data["argv"] == ["--agents", "3"]

    again = run(replay, tmp_path)
    assert again.returncode == 1, again.stderr
    assert failure_title(again.stdout) == title
    assert "failed on schedule 1." in again.stdout
    assert "THE SCRIPT'S OWN MAIN WORK" not in again.stdout  # loading ran no exploration
    assert again.stdout.rstrip().splitlines()[-1].strip() == shlex.join(["racefree", *replay[3:]])


def test_a_re_exported_workflow_replays_with_the_invariants_attached_there(
    tmp_path: Path,
) -> None:
    write(tmp_path, PACKAGE)
    found = run([*RACEFREE, "explore", "relib.cli:workflow"], tmp_path)
    assert found.returncode == 1, found.stderr
    title = failure_title(found.stdout)
    assert title == "Invariant all_counted failed: 1 of 2 lost"
    replay = replay_line(found.stdout)
    again = run(replay, tmp_path)
    assert "no longer happens" not in again.stdout
    assert again.returncode == 1, again.stdout + again.stderr
    assert failure_title(again.stdout) == title
    data = json.loads((tmp_path / replay[-1]).read_text(encoding="utf-8"))
    assert (data["workflow"], data["invariants"]) == (
        "relib.cli:workflow",
        ["relib.flows:all_counted"],
    )


def test_a_class_method_workflow_replays_by_its_qualname(tmp_path: Path) -> None:
    write(tmp_path, PACKAGE)
    found = run([*RACEFREE, "explore", "relib.flows:Flows.run"], tmp_path)
    assert found.returncode == 1, found.stderr
    replay = replay_line(found.stdout)
    assert replay[-1].startswith(".racefree/replays/Flows-run-")
    again = run(replay, tmp_path)
    assert again.returncode == 1, again.stdout + again.stderr
    assert failure_title(again.stdout) == failure_title(found.stdout)


def _recorded(tmp_path: Path) -> tuple[Path, dict[str, object]]:
    write(tmp_path, PACKAGE)
    found = run([*RACEFREE, "explore", "relib.cli:workflow"], tmp_path)
    assert found.returncode == 1, found.stderr
    path = Path(replay_line(found.stdout)[-1])
    return path, json.loads((tmp_path / path).read_text(encoding="utf-8"))


def test_a_replay_whose_module_is_gone_is_an_error_not_a_pass(tmp_path: Path) -> None:
    path, _ = _recorded(tmp_path)
    (tmp_path / "relib").rename(tmp_path / "relib_old")
    again = run([*RACEFREE, "replay", str(path)], tmp_path)
    assert (again.returncode, again.stdout) == (2, "")
    assert again.stderr == (
        f"racefree: error: Cannot import 'relib.cli', the module of the workflow that {path} "
        "names (No module named 'relib'): run from the folder that contains it, or install "
        "its package.\n"
    )


@pytest.mark.parametrize(
    ("invariant", "message"),
    [
        (
            "relib.checks:all_counted",
            "Cannot import 'relib.checks', the module of the invariant that {path} names (No "
            "module named 'relib.checks'): run from the folder that contains it, or install "
            "its package.",
        ),
        (
            "relib.flows:all_kept",
            "relib.flows has no 'all_kept', the invariant that {path} names: re-run the "
            "exploration to record a fresh replay file if it was renamed.",
        ),
    ],
)
def test_a_replay_whose_invariant_cannot_be_loaded_is_an_error_not_a_pass(
    tmp_path: Path, invariant: str, message: str
) -> None:
    path, data = _recorded(tmp_path)
    (tmp_path / path).write_text(json.dumps({**data, "invariants": [invariant]}), "utf-8")
    again = run([*RACEFREE, "replay", str(path)], tmp_path)
    assert (again.returncode, again.stdout) == (2, "")
    assert again.stderr == f"racefree: error: {message.format(path=path)}\n"


def test_a_script_replayed_from_another_folder_says_where_to_run_it(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"scripts/agents_lib.py": LOSE_AN_UPDATE, "scripts/my_test.py": SCRIPT_TOP + EXPLORE},
    )
    found = run([sys.executable, "scripts/my_test.py"], tmp_path)
    path = tmp_path / replay_line(found.stdout)[-1]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = run([*RACEFREE, "replay", str(path)], elsewhere)
    assert (again.returncode, again.stdout) == (2, "")
    assert again.stderr == (
        f"racefree: error: No script at scripts/my_test.py in {elsewhere}, the script of the "
        f"workflow that {path} names: run racefree from {tmp_path}, where the exploration "
        "ran (the path is relative to it).\n"
    )


def test_a_replay_that_passes_says_what_it_checked(tmp_path: Path) -> None:
    path, data = _recorded(tmp_path)
    (tmp_path / path).write_text(
        json.dumps({**data, "invariants": ["relib.flows:anything_goes"]}), "utf-8"
    )
    again = run([*RACEFREE, "replay", str(path)], tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == (
        f"{path}: the schedule ran to the end and every check passed (invariant "
        "anything_goes, the checker, exceptions, deadlocks and the step limit): the failure "
        "it recorded (Invariant all_counted failed: 1 of 2 lost) no longer happens.\n"
    )


def test_a_workflow_run_with_python_m_replays_from_its_module(tmp_path: Path) -> None:
    runner = """
    import racefree
    from relib.flows import all_counted, bump


    def lossy():
        return bump(2)


    if __name__ == "__main__":
        print(racefree.explore(lossy, invariants=[all_counted]).report())
    """
    write(tmp_path, {**PACKAGE, "relib/runner.py": runner})
    found = run([sys.executable, "-m", "relib.runner"], tmp_path)
    assert found.returncode == 0, found.stderr
    replay = replay_line(found.stdout)
    data = json.loads((tmp_path / replay[-1]).read_text(encoding="utf-8"))
    assert data["workflow"] == "relib.runner:lossy"
    again = run(replay, tmp_path)
    assert again.returncode == 1, again.stdout + again.stderr
    assert failure_title(again.stdout) == failure_title(found.stdout)


def test_racefree_explore_takes_a_script_path_and_replays_it(tmp_path: Path) -> None:
    attached = "\nplain_workflow.invariants = [all_counted]\n"
    guarded = 'if __name__ == "__main__":\n' + textwrap.indent(EXPLORE, "    ")
    script = SCRIPT_TOP + attached + guarded
    write(tmp_path, {"scripts/agents_lib.py": LOSE_AN_UPDATE, "scripts/my_test.py": script})
    found = run([*RACEFREE, "explore", "scripts/my_test.py:plain_workflow"], tmp_path)
    assert found.returncode == 1, found.stderr
    assert failure_title(found.stdout) == "Invariant all_counted failed: 1 of 2 lost"
    assert "THE SCRIPT'S OWN MAIN WORK" not in found.stdout
    replay = replay_line(found.stdout)
    data = json.loads((tmp_path / replay[-1]).read_text(encoding="utf-8"))
    assert (data["workflow"], data["argv"]) == ("scripts/my_test.py:plain_workflow", [])
    assert data["invariants"] == ["scripts/my_test.py:all_counted"]
    again = run(replay, tmp_path)
    assert again.returncode == 1, again.stdout + again.stderr
    assert failure_title(again.stdout) == failure_title(found.stdout)


def test_a_workflow_defined_under_the_main_block_gets_no_file_and_says_why(
    tmp_path: Path,
) -> None:
    script = """
    import racefree
    from relib.flows import all_counted, bump

    if __name__ == "__main__":

        def lossy():
            return bump(2)

        print(racefree.explore(lossy, invariants=[all_counted]).report())
    """
    write(tmp_path, {**PACKAGE, "main_only.py": script})
    found = run([sys.executable, "main_only.py"], tmp_path)
    assert found.returncode == 0, found.stderr
    assert not (tmp_path / ".racefree").exists()
    lines = found.stdout.splitlines()
    command = lines[lines.index("Reproduce it exactly with:") + 1].strip()
    assert command.startswith("racefree.explore(lossy, replay='rf1:")
    assert command.endswith(
        ", invariants=[all_counted])  # the workflow is defined under if __name__ == "
        '"__main__":, a block a replay does not run: racefree replay cannot reload it, so '
        "paste this where it is defined, or define it with def at module level; no replay "
        "file was written."
    )


def test_a_script_that_no_longer_defines_the_workflow_says_where_to_define_it(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        {"scripts/agents_lib.py": LOSE_AN_UPDATE, "scripts/my_test.py": SCRIPT_TOP + EXPLORE},
    )
    found = run([sys.executable, "scripts/my_test.py"], tmp_path)
    path = replay_line(found.stdout)[-1]
    renamed = (SCRIPT_TOP + EXPLORE).replace("plain_workflow", "renamed_workflow")
    write(tmp_path, {"scripts/my_test.py": renamed})
    again = run([*RACEFREE, "replay", path], tmp_path)
    assert (again.returncode, again.stdout) == (2, "")
    assert again.stderr == (
        "racefree: error: scripts/my_test.py defines no 'plain_workflow' before its first "
        'explore() call, outside its if __name__ == "__main__": block, the workflow that '
        f"{path} names: define it at the script's top level, above any explore() call "
        "there, or re-run the exploration to record a fresh replay file if it was "
        "renamed.\n"
    )


def test_a_script_replays_its_file_through_the_api_from_another_folder(tmp_path: Path) -> None:
    script = """
    import sys

    import racefree
    from agents_lib import bump


    def plain_workflow():
        return bump(2)


    def all_counted(state):
        assert state["n"] == 2, f"{2 - state['n']} of 2 lost"


    if __name__ == "__main__":
        replay = sys.argv[1] if len(sys.argv) > 1 else None
        result = racefree.explore(plain_workflow, invariants=[all_counted], replay=replay)
        print(result.report())
    """
    write(tmp_path, {"scripts/agents_lib.py": LOSE_AN_UPDATE, "scripts/replays.py": script})
    found = run([sys.executable, "scripts/replays.py"], tmp_path)
    assert found.returncode == 0, found.stderr
    path = tmp_path / replay_line(found.stdout)[-1]
    again = run([sys.executable, "replays.py", str(path)], tmp_path / "scripts")
    assert again.returncode == 0, again.stderr  # the same invariant, named from elsewhere
    assert failure_title(again.stdout) == failure_title(found.stdout)
