"""Cassettes: real model and tool calls recorded once, replayed offline and in virtual time."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import racefree
from racefree import (
    Cassette,
    CassetteFormatError,
    CassetteMissError,
    NotRecordableError,
    UsageError,
)
from racefree.explore import hooks


class Counted:
    """A stand-in for a real model client: answers from a template and counts its calls."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.calls = 0
        self.seconds = seconds

    def __call__(self, prompt: str, *, temperature: float = 0.0) -> dict[str, Any]:
        self.calls += 1
        if self.seconds:
            time.sleep(self.seconds)
        return {"text": f"answer {self.calls} to {prompt}", "temperature": temperature}


# --- record, then replay -----------------------------------------------------------------


def test_record_then_replay_gives_the_same_responses_without_calling_the_real_function(
    tmp_path: Path,
) -> None:
    path = tmp_path / "calls.json"
    real = Counted()
    recording = Cassette(path, mode="record")
    ask = recording.wrap(real, name="llm")
    recorded = [ask("plan"), ask("write", temperature=0.5), ask("plan")]
    assert real.calls == 3
    assert recording.recorded == 3

    replaying = Cassette(path, mode="replay", real_time=False)
    ask = replaying.wrap(real, name="llm")
    replayed = [ask("plan"), ask("write", temperature=0.5), ask("plan")]

    assert replayed == recorded
    assert real.calls == 3  # the real function was not called again
    assert replaying.replayed == 3
    assert ask.__wrapped__ is real  # type: ignore[attr-defined]


def test_async_functions_are_recorded_and_replayed(tmp_path: Path) -> None:
    path = tmp_path / "calls.json"
    calls = []

    async def search(query: str) -> list[str]:
        calls.append(query)
        await asyncio.sleep(0)
        return [f"{query}: result {len(calls)}"]

    async def run(cassette: Cassette) -> list[list[str]]:
        wrapped = cassette.wrap(search)
        return [await wrapped("racefree"), await wrapped("asyncio")]

    recorded = asyncio.run(run(Cassette(path, mode="record")))
    replayed = asyncio.run(run(Cassette(path, mode="replay", real_time=False)))

    assert replayed == recorded == [["racefree: result 1"], ["asyncio: result 2"]]
    assert calls == ["racefree", "asyncio"]


def test_identical_requests_get_the_responses_in_the_order_of_their_calls(
    tmp_path: Path,
) -> None:
    path = tmp_path / "calls.json"
    real = Counted()
    ask = Cassette(path, mode="record").wrap(real, name="llm")
    assert [ask("again")["text"] for _ in range(3)] == [
        "answer 1 to again",
        "answer 2 to again",
        "answer 3 to again",
    ]

    cassette = Cassette(path, mode="replay", real_time=False)
    ask = cassette.wrap(real, name="llm")
    first_run = [ask("again")["text"] for _ in range(3)]
    cassette.rewind()
    second_run = [ask("again")["text"] for _ in range(3)]

    assert (
        first_run == second_run == ["answer 1 to again", "answer 2 to again", "answer 3 to again"]
    )
    assert real.calls == 3


def test_a_call_that_raises_records_nothing_and_gives_its_place_back(tmp_path: Path) -> None:
    path = tmp_path / "calls.json"
    attempts = []

    def flaky(prompt: str) -> str:
        attempts.append(prompt)
        if len(attempts) == 1:
            raise TimeoutError("the model timed out")
        return f"ok: {prompt}"

    ask = Cassette(path, mode="record").wrap(flaky)
    with pytest.raises(TimeoutError):
        ask("hello")
    assert ask("hello") == "ok: hello"  # the retry

    # Offline, the first call gets the retry's answer: it took the place given back.
    assert Cassette(path, mode="replay", real_time=False).wrap(flaky)("hello") == "ok: hello"


def test_replay_waits_the_recorded_latency_outside_the_explorer_unless_told_not_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "calls.json"
    path.write_text(
        json.dumps(
            {
                "format": "racefree-cassette",
                "version": 1,
                "calls": [
                    {
                        "name": "llm",
                        "request": {"args": ["hi"], "kwargs": {}},
                        "occurrence": 0,
                        "latency": 3.0,
                        "response": "hello",
                    }
                ],
            }
        )
    )
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)

    real_time = Cassette(path, mode="replay").wrap(Counted(), name="llm")
    no_wait = Cassette(path, mode="replay", real_time=False).wrap(Counted(), name="llm")

    assert real_time("hi") == no_wait("hi") == "hello"
    assert waits == [3.0, 0.0]


# --- under the explorer ---------------------------------------------------------------------


async def _research_then_summary(cassette: Cassette, tools: dict[str, Any]) -> dict[str, Any]:
    """The summary must come after the research; it does only when the model is slow."""
    search = cassette.wrap(tools["search"], name="search")
    summarize = cassette.wrap(tools["summarize"], name="summarize")
    state: dict[str, Any] = {"log": []}

    async def researcher() -> None:
        found = await search("race conditions")  # a quick tool call
        hooks.point("append", "log")
        state["log"].append(found)

    async def summarizer() -> None:
        summary = await summarize("the findings")  # a slow model call
        hooks.point("append", "log")
        state["log"].append(summary)

    await asyncio.gather(researcher(), summarizer())
    state["clock"] = time.monotonic()
    return state


def _record_tools(path: Path, real_calls: list[str]) -> None:
    """Record the two calls once, in virtual time: 0.5 s for the tool, 3 s for the model."""

    async def search(query: str) -> str:
        real_calls.append("search")
        await asyncio.sleep(0.5)
        return f"sources on {query}"

    async def summarize(what: str) -> str:
        real_calls.append("summarize")
        await asyncio.sleep(3.0)
        return f"summary of {what}"

    tools = {"search": search, "summarize": summarize}
    cassette = Cassette(path, mode="record")

    async def workflow() -> dict[str, Any]:
        return await _research_then_summary(cassette, tools)

    racefree.explore(workflow, schedules=1, latency="virtual", save_dir=None).check()


async def _offline(what: str) -> str:
    raise AssertionError("a replayed call reached the real function")


_OFFLINE = {"search": _offline, "summarize": _offline}


def _in_order(state: dict[str, Any]) -> bool:
    return bool(state["log"] == ["sources on race conditions", "summary of the findings"])


def test_recorded_latency_is_replayed_as_virtual_time_under_the_explorer(tmp_path: Path) -> None:
    path = tmp_path / "tools.json"
    real_calls: list[str] = []
    _record_tools(path, real_calls)
    assert real_calls == ["search", "summarize"]
    latencies = {c["name"]: c["latency"] for c in json.loads(path.read_text())["calls"]}
    assert latencies == {"search": 0.5, "summarize": 3.0}

    cassette = Cassette(path, mode="replay")  # real_time=True: yet no real wait below
    tools = _OFFLINE
    clocks: list[float] = []

    async def workflow() -> dict[str, Any]:
        state = await _research_then_summary(cassette, tools)
        clocks.append(state["clock"])
        return state

    started = time.perf_counter()
    result = racefree.explore(
        workflow,
        schedules=40,
        strategy="random",  # "auto" would stop after one run: there is one ordering
        latency="virtual",
        invariants=[_in_order],
        save_dir=None,
    )
    wall = time.perf_counter() - started

    assert result.ok and result.runs == 40
    assert clocks == [3.0] * 40  # every run waited the recorded 3 s of virtual time...
    assert wall < 3.0  # ...and 40 of them took less wall time than one real call
    assert real_calls == ["search", "summarize"]


def test_the_explorer_reorders_two_agents_cassette_calls_and_finds_the_race(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tools.json"
    real_calls: list[str] = []
    _record_tools(path, real_calls)
    cassette = Cassette(path, mode="replay")
    tools = _OFFLINE

    async def workflow() -> dict[str, Any]:
        return await _research_then_summary(cassette, tools)

    # In deadline order the recorded latencies always put the research first...
    natural = racefree.explore(
        workflow, strategy="exhaustive", latency="virtual", invariants=[_in_order], save_dir=None
    )
    assert natural.ok and natural.complete
    # ...but a latency is not a promise: the slow model may answer first.
    found = racefree.explore(workflow, strategy="exhaustive", invariants=[_in_order], save_dir=None)
    assert found.failure is not None
    assert found.failure.run.result["log"][0] == "summary of the findings"
    assert real_calls == ["search", "summarize"]  # offline throughout


def test_a_lost_update_between_threads_whose_model_calls_come_from_a_cassette(
    tmp_path: Path,
) -> None:
    path = tmp_path / "llm.json"
    real = Counted()
    recording = Cassette(path, mode="record")
    for role in ("Researcher", "Writer"):
        recording.wrap(real, name="llm")(f"you are the {role}")
    cassette = Cassette(path, mode="replay")

    def workflow() -> dict[str, Any]:
        ask = cassette.wrap(real, name="llm")
        state: dict[str, Any] = {"notes": []}

        def agent(role: str) -> None:
            hooks.point("read", "notes")
            notes = list(state["notes"])
            reply = ask(f"you are the {role}")  # replayed: a virtual wait, a scheduling point
            hooks.point("write", "notes")
            state["notes"] = [*notes, reply["text"]]

        threads = [threading.Thread(target=agent, args=(r,)) for r in ("Researcher", "Writer")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return state

    result = racefree.explore(
        workflow,
        strategy="exhaustive",
        invariants=[lambda s: len(s["notes"]) == 2],
        keep_going=True,
        save_dir=None,
    )

    assert result.complete
    assert result.failures  # some orderings lose a note
    assert result.runs > len(result.failures)  # and some keep both
    assert real.calls == 2  # only the recording called the model


def test_identical_requests_of_two_agents_are_numbered_by_who_calls_first(
    tmp_path: Path,
) -> None:
    path = tmp_path / "llm.json"
    ask = Cassette(path, mode="record").wrap(Counted(), name="llm")
    ask("same prompt")
    ask("same prompt")
    cassette = Cassette(path, mode="replay")

    def workflow() -> dict[str, str]:
        replay = cassette.wrap(Counted(), name="llm")
        got: dict[str, str] = {}

        def agent(name: str) -> None:
            got[name] = replay("same prompt")["text"]

        threads = [threading.Thread(target=agent, args=(n,), name=n) for n in ("A", "B")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return got

    seen: set[tuple[str, str]] = set()
    result = racefree.explore(
        workflow,
        strategy="exhaustive",
        invariants=[lambda got: seen.add((got["A"], got["B"])) or True],
        save_dir=None,
    )
    assert result.ok and result.complete
    # Both orders of the two identical calls are explored; each run is deterministic.
    assert seen == {
        ("answer 1 to same prompt", "answer 2 to same prompt"),
        ("answer 2 to same prompt", "answer 1 to same prompt"),
    }


# --- errors -------------------------------------------------------------------------------


def test_a_miss_in_replay_mode_names_the_request_and_how_to_record_it(tmp_path: Path) -> None:
    path = tmp_path / "calls.json"
    Cassette(path, mode="record").wrap(Counted(), name="llm")("plan", temperature=0.5)
    real = Counted()
    ask = Cassette(path, mode="replay", real_time=False).wrap(real, name="llm")

    with pytest.raises(
        CassetteMissError,
        match=r"^The cassette .*calls\.json has no recorded response for "
        r'llm\("write", temperature=0\.5\)\. Record the missing calls once with '
        r"mode='auto', or record everything anew with mode='record'\.$",
    ) as missed:
        ask("write", temperature=0.5)
    assert missed.value.name == "llm"
    assert missed.value.occurrence == 0

    ask("plan", temperature=0.5)
    with pytest.raises(
        CassetteMissError,
        match=r"^The cassette .*calls\.json holds 1 recorded response for "
        r'llm\("plan", temperature=0\.5\), but this is call 2 of it\. Record the missing calls '
        r"once with mode='auto', or record everything anew with mode='record'\.$",
    ):
        ask("plan", temperature=0.5)
    assert real.calls == 0


def test_replaying_a_missing_file_says_to_record_it_first(tmp_path: Path) -> None:
    with pytest.raises(
        CassetteMissError,
        match=r"^The cassette file .*absent\.json does not exist, so there is nothing to replay\. "
        r"Record it once with mode='record' \(or mode='auto', which records only what is "
        r"missing\)\.$",
    ):
        Cassette(tmp_path / "absent.json", mode="replay")


def test_arguments_that_are_not_json_raise_a_typed_error_and_write_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "calls.json"
    calls = []

    def ask(client: object, prompt: str) -> str:
        calls.append(prompt)
        return f"reply to {prompt}"

    cassette = Cassette(path, mode="auto")
    with pytest.raises(
        NotRecordableError,
        match=r"^The arguments of ask\(\) are not JSON, so the cassette cannot key the call: "
        r"Object of type object is not JSON serializable\. Pass only JSON values .*, or give "
        r"wrap\(\) a key function that returns one, such as key=lambda prompt, \*\*_: prompt\.$",
    ):
        cassette.wrap(ask)(object(), "hi")
    assert calls == []
    assert not path.exists()

    # A key function says what identifies the request.
    keyed = cassette.wrap(ask, key=lambda client, prompt: prompt)
    assert keyed(object(), "hi") == "reply to hi"
    assert Cassette(path, mode="replay", real_time=False).wrap(ask, key=lambda c, p: p)(
        object(), "hi"
    ) == ("reply to hi")
    assert calls == ["hi"]


@pytest.mark.parametrize(
    ("response", "why"),
    [
        (object(), r"which is not JSON, so the cassette cannot record it: Object of type object"),
        (("a", "b"), r"that JSON would give back changed \(a tuple comes back as a list"),
        ({1: "one"}, r"that JSON would give back changed"),
        (float("nan"), r"which is not JSON"),
    ],
)
def test_responses_that_are_not_json_raise_a_typed_error_and_record_nothing(
    tmp_path: Path, response: Any, why: str
) -> None:
    path = tmp_path / "calls.json"
    cassette = Cassette(path, mode="record")
    ask = cassette.wrap(lambda prompt: response, name="llm")
    with pytest.raises(NotRecordableError, match=r"^llm\(\) returned an? \w+,? " + why + r".*\.$"):
        ask("hi")
    assert len(cassette) == 0 and cassette.recorded == 0
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind either


def test_bad_modes_and_unreadable_files_raise_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^A cassette's mode must be 'record', 'replay' or"):
        Cassette(tmp_path / "x.json", mode="rewind")  # type: ignore[arg-type]
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(CassetteFormatError, match=r"is not valid JSON .* Delete it and record"):
        Cassette(broken)
    other = tmp_path / "other.json"
    other.write_text('{"calls": []}')
    with pytest.raises(CassetteFormatError, match=r"is not a racefree cassette"):
        Cassette(other, mode="replay")
    bad_call = tmp_path / "bad.json"
    bad_call.write_text('{"format": "racefree-cassette", "version": 1, "calls": [{"name": "x"}]}')
    with pytest.raises(
        CassetteFormatError,
        match=r"has a malformed call at index 0: it lacks 'request', 'occurrence', 'latency', "
        r"'response'\. Delete it and record again\.$",
    ):
        Cassette(bad_call)


# --- the file -------------------------------------------------------------------------------


def test_the_file_is_plain_sorted_json_and_survives_a_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "cassettes" / "calls.json"  # the folder is made on the first save
    ask = Cassette(path, mode="record").wrap(Counted(), name="llm")
    ask("zeta")
    ask("alpha", temperature=1.0)
    ask("zeta")

    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["format"] == "racefree-cassette" and document["version"] == 1
    assert [(c["request"], c["occurrence"]) for c in document["calls"]] == [
        ({"args": ["alpha"], "kwargs": {"temperature": 1.0}}, 0),
        ({"args": ["zeta"], "kwargs": {}}, 0),
        ({"args": ["zeta"], "kwargs": {}}, 1),
    ]
    assert document["calls"][1]["response"] == {"text": "answer 1 to zeta", "temperature": 0.0}

    before = path.read_bytes()
    loaded = Cassette(path, mode="auto")
    assert len(loaded) == 3
    loaded.save()
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["calls.json"]  # no temporary file


def test_auto_mode_replays_what_is_recorded_and_records_what_is_not(tmp_path: Path) -> None:
    path = tmp_path / "calls.json"
    real = Counted()
    ask = Cassette(path, mode="auto").wrap(real, name="llm")
    first = ask("plan")
    assert real.calls == 1

    cassette = Cassette(path, mode="auto", real_time=False)
    ask = cassette.wrap(real, name="llm")
    assert ask("plan") == first  # replayed
    assert ask("plan")["text"] == "answer 2 to plan"  # a second identical call: recorded
    assert ask("review")["text"] == "answer 3 to review"  # a new request: recorded
    assert (real.calls, cassette.replayed, cassette.recorded) == (3, 1, 2)
    assert len(json.loads(path.read_text())["calls"]) == 3


def test_concurrent_threads_each_get_a_distinct_recording(tmp_path: Path) -> None:
    path = tmp_path / "calls.json"
    real = Counted()
    record = Cassette(path, mode="record").wrap(real, name="llm")
    for _ in range(60):
        record("same")
    cassette = Cassette(path, mode="replay", real_time=False)
    ask = cassette.wrap(real, name="llm")
    got: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def agent() -> None:
        start.wait()
        for _ in range(10):
            text = ask("same")["text"]
            with lock:
                got.append(text)

    threads = [threading.Thread(target=agent) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(got) == sorted(f"answer {n} to same" for n in range(1, 61))
    with pytest.raises(CassetteMissError, match=re.escape("but this is call 61 of it")):
        ask("same")
