from __future__ import annotations

import threading
from pathlib import Path

import pytest

from racefree import Event, History, HistoryFormatError, agent


def test_record_takes_the_agent_from_the_context_and_numbers_events() -> None:
    history = History()
    with agent("Researcher"):
        history.record("read", "notes", version_read=0)
    history.record("write", "notes", agent="Writer", version_read=0, version_written=1)
    first, second = history.events
    assert (first.seq, first.agent, first.op) == (0, "Researcher", "read")
    assert (second.seq, second.agent, second.version_written) == (1, "Writer", 1)
    assert history.agents() == ["Researcher", "Writer"]


def test_concurrent_records_get_distinct_consecutive_seqs() -> None:
    history = History()
    start = threading.Barrier(4)

    def worker() -> None:
        start.wait()
        for _ in range(1000):
            history.record("append", "log")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [e.seq for e in history] == list(range(4000))


def test_jsonl_round_trip(tmp_path: Path) -> None:
    history = History()
    history.record("append", "h", agent="A", value={"text": "hi"}, meta={"position": 0})
    history.record("read", None, agent="B")
    path = tmp_path / "run.jsonl"
    history.to_jsonl(path)
    assert History.from_jsonl(path).events == history.events


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("not json", "Expecting value"),
        ("[1, 2]", "an event must be a JSON object, not list"),
        ('{"seq": 0, "time": 0, "op": "read"}', "the event has no 'agent'"),
        ('{"seq": "0", "time": 0, "agent": "A", "op": "read"}', "'seq' has the wrong type"),
        ('{"seq": 0, "time": 0, "agent": "A", "op": "read", "colour": 1}', "unknown field"),
    ],
)
def test_a_malformed_line_is_reported_with_its_number(
    tmp_path: Path, line: str, problem: str
) -> None:
    path = tmp_path / "bad.jsonl"
    good = '{"seq": 0, "time": 0.0, "agent": "A", "op": "read"}'
    path.write_text(f"{good}\n\n{line}\n", encoding="utf-8")
    with pytest.raises(HistoryFormatError, match=rf"^{path}, line 3: .*{problem}"):
        History.from_jsonl(path)


def test_event_from_dict_rejects_a_boolean_seq() -> None:
    with pytest.raises(ValueError, match="'seq' has the wrong type"):
        Event.from_dict({"seq": True, "time": 0, "agent": "A", "op": "read"})


def test_a_line_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"seq": 0, "time": 0, "agent": "A", "op": "read"}\n\xff\xfe\n')
    with pytest.raises(HistoryFormatError, match=rf"^{path}, line 2: not UTF-8 text\. "):
        History.from_jsonl(path)


def test_a_repeated_seq_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "twice.jsonl"
    line = '{"seq": 4, "time": 0, "agent": "A", "op": "read"}\n'
    path.write_text(line + line, encoding="utf-8")
    with pytest.raises(HistoryFormatError, match=r"line 2: seq 4 was already used on line 1\."):
        History.from_jsonl(path)


@pytest.mark.parametrize("time", ["1e999", "-1"])
def test_time_must_be_finite_and_not_negative(tmp_path: Path, time: str) -> None:
    path = tmp_path / "time.jsonl"
    path.write_text(f'{{"seq": 0, "time": {time}, "agent": "A", "op": "read"}}\n', "utf-8")
    with pytest.raises(HistoryFormatError, match=r"'time' must be a finite number of seconds"):
        History.from_jsonl(path)


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def _line(value_json: str) -> str:
    return (
        '{"seq": 0, "time": 0, "agent": "A", "op": "write", "key": "k", "value": '
        + value_json
        + "}\n"
    )


@pytest.mark.parametrize("levels", [100, 10_000])
def test_a_line_nested_too_deeply_is_a_format_error_not_a_crash(
    tmp_path: Path, levels: int
) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text(_line(_deep(levels)))
    with pytest.raises(
        HistoryFormatError,
        match=rf"^{path}, line 1: the JSON nests lists and objects more than 100 levels deep\. "
        r"Each line must be one JSON object with at least seq, time, agent and op; see "
        r"docs/history\.md\.$",
    ):
        History.from_jsonl(path)


def test_a_line_nested_at_the_limit_is_read_from_any_stack_depth(tmp_path: Path) -> None:
    import sys

    path = tmp_path / "limit.jsonl"
    path.write_text(_line(_deep(99)))  # the event object itself is one more level

    def at_depth(n: int) -> History:
        return at_depth(n - 1) if n else History.from_jsonl(path)

    assert len(History.from_jsonl(path)) == 1
    deep_path = tmp_path / "deep.jsonl"
    deep_path.write_text(_line(_deep(500)))

    def deep_at_depth(n: int) -> None:
        if n:
            return deep_at_depth(n - 1)
        with pytest.raises(HistoryFormatError, match=r"more than 100 levels deep"):
            History.from_jsonl(deep_path)
        return None

    deep_at_depth(sys.getrecursionlimit() - 100)


def test_a_line_longer_than_the_limit_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    from racefree.history import MAX_LINE_BYTES

    path = tmp_path / "long.jsonl"
    with open(path, "wb") as out:
        out.write(b'{"seq": 0, "time": 0, "agent": "A", "op": "write"}\n')
        out.write(b" " * (MAX_LINE_BYTES + 10) + b"\n")
    with pytest.raises(
        HistoryFormatError,
        match=rf"^{path}, line 2: longer than 16,777,216 bytes, so it was not read\. A history "
        r"is JSON lines, one event per line, each at most 16 MiB; see docs/history\.md\.$",
    ):
        History.from_jsonl(path)
