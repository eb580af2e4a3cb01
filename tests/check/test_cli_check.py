from __future__ import annotations

import json
from pathlib import Path

import pytest

from racefree import History, UsageError, check
from racefree.cli import main


def _write(path: Path, steps: list[tuple[str, str, str | None]]) -> str:
    history = History()
    for who, op, key in steps:
        history.record(op, key, agent=who)
    history.to_jsonl(path)
    return str(path)


LOST = [("A", "read", "k"), ("B", "read", "k"), ("B", "write", "k"), ("A", "write", "k")]
WINDOW = [("A", "read", "k"), ("A", "call", None), ("B", "read", "j"), ("A", "write", "k")]
CLEAN = [("A", "read", "k"), ("A", "write", "k"), ("B", "read", "k"), ("B", "write", "k")]


def test_a_clean_history_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", _write(tmp_path / "h.jsonl", CLEAN)]) == 0
    assert capsys.readouterr().out == "Checked 4 events: no race found.\n"


def test_an_error_exits_1_and_tells_the_story(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", _write(tmp_path / "h.jsonl", LOST)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("1. ERROR: lost update on k (A, B)\n")
    assert "B's write is gone." in out
    assert out.endswith("Checked 4 events: 1 error(s), 0 warning(s).\n")


def test_warnings_alone_exit_0_or_1_with_strict(tmp_path: Path) -> None:
    path = _write(tmp_path / "h.jsonl", WINDOW)
    assert main(["check", path]) == 0
    assert main(["check", "--strict", path]) == 1


def test_json_output_has_the_findings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--json", _write(tmp_path / "h.jsonl", LOST)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert (data["ok"], data["events"], data["errors"], data["warnings"]) == (False, 4, 1, 0)
    [finding] = data["findings"]
    assert finding["kind"] == "lost-update"
    assert finding["agents"] == ["A", "B"]
    assert [e["seq"] for e in finding["events"]] == [0, 2, 3]
    assert finding["story"].endswith("or hold one lock from the read to the write.")


def test_final_state_file_enables_the_append_check(tmp_path: Path) -> None:
    path = _write(tmp_path / "h.jsonl", [("A", "append", "log")])
    (tmp_path / "state.json").write_text('{"log": []}')
    assert main(["check", path, "--final-state", str(tmp_path / "state.json")]) == 1


def test_a_malformed_history_is_one_line_with_its_line_number_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text('{"seq": 0, "time": 0, "agent": "A", "op": "read"}\n{"seq": 1}\n')
    assert main(["check", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"racefree: error: {path}, line 2: the event has no 'time'. Each line must be one "
        "JSON object with at least seq, time, agent and op; see docs/history.md.\n"
    )


def test_a_missing_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(tmp_path / "nope.jsonl")]) == 2
    assert capsys.readouterr().err == (
        f"racefree: error: Cannot read {tmp_path / 'nope.jsonl'}: No such file or directory. "
        "Check the path.\n"
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"[1, 2]", "holds a JSON list, not an object."),
        (b"\xff\xfe{}", "is not UTF-8 text."),
    ],
)
def test_a_final_state_that_is_not_a_json_object_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, problem: str
) -> None:
    path = _write(tmp_path / "h.jsonl", CLEAN)
    state = tmp_path / "state.json"
    state.write_bytes(content)
    assert main(["check", path, "--final-state", str(state)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"racefree: error: {state} {problem}")
    assert err.count("\n") == 1


def test_check_of_dev_zero_exits_2_with_a_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "/dev/zero"]) == 2
    assert capsys.readouterr().err == (
        "racefree: error: /dev/zero, line 1: longer than 16,777,216 bytes, so it was not read. "
        "A history is JSON lines, one event per line, each at most 16 MiB; see "
        "docs/history.md.\n"
    )


def test_a_final_state_nested_10000_levels_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "h.jsonl", [("A", "append", "log")])
    state = tmp_path / "state.json"
    state.write_text('{"log": ' + "[" * 10_000 + "]" * 10_000 + "}")
    assert main(["check", path, "--final-state", str(state)]) == 2
    assert capsys.readouterr().err == (
        f"racefree: error: {state}: the JSON nests lists and objects more than 100 levels "
        "deep. The final state must be one JSON object (key -> value).\n"
    )


def _many_lost_updates(path: Path, count: int) -> str:
    history = History()
    for i in range(count):
        key = f"k{i}"
        history.record("read", key, agent="A")
        history.record("read", key, agent="B")
        history.record("write", key, agent="B")
        history.record("write", key, agent="A")
    history.to_jsonl(path)
    return str(path)


def test_past_the_limit_findings_of_a_kind_are_only_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _many_lost_updates(tmp_path / "h.jsonl", 250)
    assert main(["check", "--max-findings", "10", path]) == 1
    out = capsys.readouterr().out
    assert out.count("ERROR: lost update") == 10
    assert out.endswith(
        "Checked 1000 events: 250 error(s), 0 warning(s). Past 10 findings of a kind the rest "
        "were only counted (240 more lost-update); fix those shown and check again, or raise "
        "--max-findings.\n"
    )
    assert main(["check", "--json", path]) == 1
    data = json.loads(capsys.readouterr().out)
    assert (data["ok"], data["errors"], len(data["findings"]), data["omitted"]) == (
        False,
        250,
        100,
        {"lost-update": 150},
    )


def test_the_api_keeps_every_finding_when_asked(tmp_path: Path) -> None:
    history = History.from_jsonl(_many_lost_updates(tmp_path / "h.jsonl", 150))
    assert len(check(history).findings) == 100
    report = check(history, max_findings=None)
    assert (len(report.findings), report.omitted, report.error_count) == (150, (), 150)
    with pytest.raises(UsageError, match=r"^max_findings must be an int of at least 1"):
        check(history, max_findings=0)
