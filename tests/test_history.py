from __future__ import annotations

import dataclasses
import datetime
import threading
from pathlib import Path

import pytest

from racefree import (
    Event,
    History,
    HistoryEncodeError,
    HistoryFormatError,
    agent,
    history_of,
    track,
)


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


@dataclasses.dataclass
class _Session:
    created: datetime.datetime
    turns: list[str]


def _history_with_a_datetime() -> History:
    session = track(_Session(datetime.datetime(2026, 12, 3, 9, 30), []), name="session")
    with agent("Writer"):
        session.turns.append("hello")
        session.created = datetime.datetime(2026, 12, 3, 9, 31)
    return history_of(session)


def test_a_value_json_cannot_hold_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    path.write_text("what was there before\n")
    history = _history_with_a_datetime()
    with pytest.raises(HistoryEncodeError) as caught:
        history.to_jsonl(path)
    message = str(caught.value)
    assert "(Writer write on 'session.created')" in message
    assert "value is a datetime (datetime.datetime(2026, 12, 3, 9, 31))" in message
    assert f"Nothing was written to {path}" in message
    assert "default=str" in message
    assert isinstance(caught.value, TypeError)  # what json.dumps itself raises
    assert path.read_text() == "what was there before\n"


def test_default_turns_such_values_into_json_ones(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    _history_with_a_datetime().to_jsonl(path, default=str)
    written = History.from_jsonl(path).events[-1]
    assert (written.op, written.key, written.value) == (
        "write",
        "session.created",
        "2026-12-03 09:31:00",
    )


def test_a_nested_part_is_named_by_its_path(tmp_path: Path) -> None:
    history = History()
    history.record("append", "log", agent="A", value={"item": [1, {"tags": {"x"}}]})
    with pytest.raises(HistoryEncodeError, match=r"value\['item'\]\[1\]\['tags'\] is a set"):
        history.to_jsonl(tmp_path / "run.jsonl")
    assert not (tmp_path / "run.jsonl").exists()


@pytest.mark.parametrize(
    ("meta", "part"),
    [
        ({"seen": {(1, 2): "pair"}}, "meta['seen'] is a dict with a tuple key ((1, 2))"),
        ({"seen": {1: "a", "b": 2}}, "meta['seen'] is a dict whose keys mix int and str"),
    ],
)
def test_a_key_json_cannot_hold_says_to_change_the_keys(
    tmp_path: Path, meta: dict[str, object], part: str
) -> None:
    history = History()
    history.record("append", "log", agent="A", meta=meta)
    with pytest.raises(HistoryEncodeError) as caught:
        history.to_jsonl(tmp_path / "run.jsonl", default=str)  # default= is not asked about keys
    assert part in str(caught.value)
    assert "keys of one JSON type" in str(caught.value)


def test_a_default_that_refuses_is_quoted(tmp_path: Path) -> None:
    def no_dates(value: object) -> object:
        raise TypeError(f"cannot convert {type(value).__name__}")

    history = History()
    history.record("write", "when", agent="A", value=datetime.date(2026, 12, 3))
    with pytest.raises(HistoryEncodeError, match="default= raised TypeError: cannot convert date"):
        history.to_jsonl(tmp_path / "run.jsonl", default=no_dates)


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
