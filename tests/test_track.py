from __future__ import annotations

import asyncio
import collections
import copy
import dataclasses
import json
import pickle
import subprocess
import sys
import threading
from collections.abc import MutableMapping, MutableSequence
from typing import Any

import pydantic
import pytest

from racefree import History, UsageError, agent, check, history_of, suspension, track


def _ops(history: History) -> list[tuple[str, str, str | None]]:
    return [(e.agent, e.op, e.key) for e in history.events]


def test_reads_and_writes_become_events_with_dotted_keys_and_the_agent() -> None:
    session: dict[str, Any] = {"metadata": {"completed": 0}, "history": []}
    shared = track(session, name="session")
    with agent("Analyzer"):
        done = shared["metadata"]["completed"]
        shared["metadata"]["completed"] = done + 1
        shared["history"].append("hi")
    history = history_of(shared)
    assert _ops(history) == [
        ("Analyzer", "read", "session.metadata.completed"),
        ("Analyzer", "write", "session.metadata.completed"),
        ("Analyzer", "append", "session.history"),
    ]
    read, write, append = history.events
    assert (read.value, read.version_read) == (0, 0)
    assert (write.value, write.version_read, write.version_written) == (1, 0, 1)
    assert append.value == "hi"
    assert session == {"metadata": {"completed": 1}, "history": ["hi"]}  # the original changed


def test_the_wrapper_behaves_like_the_original_for_normal_use() -> None:
    data: dict[str, Any] = {"a": 1, "items": [1, 2, {"x": 3}]}
    shared = track(data)
    assert isinstance(shared, MutableMapping)
    assert isinstance(shared["items"], MutableSequence)
    assert shared == data and shared["items"] == [1, 2, {"x": 3}]
    assert len(shared) == 2 and sorted(shared) == ["a", "items"] and "a" in shared
    assert dict(shared)["a"] == 1 and shared.get("missing", 5) == 5
    assert list(shared["items"])[:2] == [1, 2]
    assert shared["items"][2]["x"] == 3
    assert shared["items"][-1] == {"x": 3}
    assert copy.copy(shared["items"]) == [1, 2, {"x": 3}]
    assert type(copy.copy(shared)) is dict
    shared["items"] += [4]
    shared["items"].extend([5, 6])
    assert data["items"][3:] == [4, 5, 6]
    assert shared["items"].pop() == 6
    del shared["a"]
    assert data == {"items": [1, 2, {"x": 3}, 4, 5]}
    assert repr(shared) == repr(data)


def test_list_changes_are_atomic_ops_on_the_list_key() -> None:
    shared = track([], name="log")
    shared.append(1)
    shared.extend([2, 3])
    shared += [4]
    shared.insert(0, 0)
    shared.remove(4)
    shared.clear()
    ops = [(e.op, e.key, e.value) for e in history_of(shared).events]
    assert ops == [
        ("append", "log", 1),
        ("extend", "log", [2, 3]),
        ("extend", "log", [4]),
        ("insert", "log", 0),
        ("remove", "log", 4),
        ("write", "log", []),
    ]


def test_write_values_are_copies_not_live_references() -> None:
    shared = track({})
    mine = ["a"]
    shared["k"] = mine
    mine.append("b")
    assert history_of(shared).events[0].value == ["a"]


def test_the_agent_is_the_thread_or_task_name_without_an_explicit_one() -> None:
    shared = track({"n": 0})

    def work() -> None:
        shared["n"] = 1

    thread = threading.Thread(target=work, name="worker-7")
    thread.start()
    thread.join()

    async def task() -> None:
        shared["n"] = 2

    async def main() -> None:
        await asyncio.create_task(task(), name="planner")

    asyncio.run(main())
    assert [e.agent for e in history_of(shared).events] == ["worker-7", "planner"]


def test_a_read_modify_write_split_by_threads_is_found_by_the_checker() -> None:
    shared = track({"count": 0}, name="state")
    both_read = threading.Barrier(2)

    def increment(name: str) -> None:
        with agent(name):
            count = shared["count"]
            both_read.wait()
            if name == "B":  # A writes first, then B from its stale copy
                wrote.wait()
            shared["count"] = count + 1
            if name == "A":
                wrote.set()

    wrote = threading.Event()
    threads = [threading.Thread(target=increment, args=(n,)) for n in "AB"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [finding] = check(history_of(shared)).findings
    assert (finding.kind, finding.agents, finding.keys) == (
        "lost-update",
        ("B", "A"),
        ("state.count",),
    )


def test_suspension_marks_a_race_window() -> None:
    shared = track({"plan": "draft"})
    with agent("A"):
        plan = shared["plan"]
        suspension(shared, "llm")
    with agent("B"):
        suspension(shared, "llm")
    with agent("A"):
        shared["plan"] = plan + " v2"
    [finding] = check(history_of(shared)).findings
    assert finding.kind == "race-window"
    assert history_of(shared).events[1].op == "call"
    assert history_of(shared).events[1].value == "llm"


def test_track_refuses_what_it_cannot_wrap() -> None:
    with pytest.raises(
        UsageError,
        match=r"^track\(\) wraps a dict, a list or an object with attributes, not str\. ",
    ):
        track("text")
    with pytest.raises(
        UsageError, match=r"not defaultdict \(a dict subclass: convert it first\)\."
    ):
        track(collections.defaultdict(list))

    class Slotted:
        __slots__ = ("x",)

    with pytest.raises(
        UsageError, match=r"not Slotted \(its class has __slots__ and no __dict__\)\."
    ):
        track(Slotted())
    with pytest.raises(UsageError, match=r"^history_of\(\) takes an object returned by track"):
        history_of({})


def test_tracking_twice_gives_the_same_wrapper_and_history() -> None:
    history = History()
    shared = track({}, history=history)
    assert track(shared) is shared
    assert history_of(shared) is history


# --- tracked state behaves like the original ------------------------------------------------


def _session() -> dict[str, Any]:
    return {"history": ["hi"], "meta": {"done": 0}, "tokens": 3}


def _reads(history: History) -> list[tuple[str, str | None, Any]]:
    """(op, key, value) of each event, then forget them (the next check starts afresh)."""
    out = [(e.op, e.key, e.value) for e in history.events]
    history._events.clear()
    return out


# The deep read of _session() at its starting values: the dict, each value, the nested dict.
DEEP_READ = [
    ("read", "s", None),
    ("read", "s.history", None),
    ("read", "s.tokens", 3),
    ("read", "s.meta", None),
    ("read", "s.meta.done", 0),
]
SHALLOW_READ = [("read", "s", None), ("read", "s.tokens", 3)]


def _has_wrapper(value: Any) -> bool:
    """True if a tracked wrapper is anywhere inside ``value``."""
    if type(value) not in (dict, list, int, str):
        return True
    if isinstance(value, dict):
        return any(_has_wrapper(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_wrapper(v) for v in value)
    return False


def test_a_tracked_dict_or_list_is_a_dict_or_list() -> None:
    shared = track(_session(), name="s")
    assert isinstance(shared, dict) and isinstance(shared["meta"], dict)
    assert isinstance(shared["history"], list) and isinstance(track([]), list)


def test_deepcopy_gives_plain_data_and_is_a_read_of_everything_copied() -> None:
    shared = track(_session(), name="s")
    history = history_of(shared)
    copied = copy.deepcopy(shared)
    assert copied == _session() and not _has_wrapper(copied)
    assert sorted(_reads(history), key=str) == sorted(DEEP_READ, key=str)
    copied["history"].append("mine")  # a copy: changing it changes nothing shared
    assert shared["history"] == ["hi"] and _reads(history)[-1][0] == "read"


def test_deepcopy_keeps_aliases_through_the_memo() -> None:
    shared = track(_session(), name="s")
    both = copy.deepcopy({"a": shared, "b": shared, "meta": shared["meta"]})
    assert both["a"] is both["b"] and both["meta"] is both["a"]["meta"]


def test_pickle_round_trip_gives_plain_data_and_is_a_read() -> None:
    shared = track(_session(), name="s")
    history = history_of(shared)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        loaded = pickle.loads(pickle.dumps(shared, protocol=protocol))
        assert loaded == _session() and not _has_wrapper(loaded), protocol
        assert sorted(_reads(history), key=str) == sorted(DEEP_READ, key=str)
    assert pickle.loads(pickle.dumps(shared["history"])) == ["hi"]


def test_copy_copies_the_top_level_and_keeps_the_nested_parts_tracked() -> None:
    shared = track(_session(), name="s")
    history = history_of(shared)
    for make in (copy.copy, dict.copy, lambda d: d.copy()):
        shallow = make(shared)
        if make is dict.copy:  # the C method reads the storage: not recorded, but current
            assert shallow == _session()
            continue
        assert type(shallow) is dict and shallow == _session()
        assert _reads(history)[:2] == SHALLOW_READ
        shallow["tokens"] = 99  # the copy's own top level
        shallow["meta"]["done"] = 1  # the shared nested dict, as with a plain dict
        assert shared["tokens"] == 3 and shared["meta"]["done"] == 1
        assert ("write", "s.meta.done", 1) in _reads(history)
        shared["meta"]["done"] = 0
        _reads(history)
    assert type(copy.copy(shared["history"])) is list
    _reads(history)


def test_json_dumps_of_the_tracked_state_and_of_dict_of_it_work_and_are_reads() -> None:
    shared = track(_session(), name="s")
    history = history_of(shared)
    expected = json.dumps(_session())
    assert json.dumps(shared) == expected
    events = _reads(history)
    assert ("read", "s", None) in events and ("read", "s.tokens", 3) in events
    assert json.dumps(dict(shared)) == expected
    assert ("read", "s.tokens", 3) in _reads(history)
    assert json.dumps(shared["history"]) == '["hi"]'
    assert _reads(history) == [("read", "s.history", None)]


def test_or_ior_and_dict_behave_as_on_the_original() -> None:
    shared = track(_session(), name="s")
    history = history_of(shared)
    merged = shared | {"tokens": 4, "new": 1}
    assert type(merged) is dict and merged == {**_session(), "tokens": 4, "new": 1}
    assert _reads(history)[:2] == SHALLOW_READ
    assert {"new": 1} | shared == {"new": 1, **_session()}
    _reads(history)
    same = shared
    shared |= {"tokens": 5}
    assert shared is same and isinstance(shared, dict) and shared["tokens"] == 5
    assert _reads(history)[0] == ("write", "s.tokens", 5)
    assert dict(shared) == {**_session(), "tokens": 5}
    assert list(shared["history"]) == ["hi"]
    with pytest.raises(TypeError):
        shared | 3


def test_equality_is_that_of_the_original_and_a_read_of_everything() -> None:
    shared = track(_session(), name="s")
    history = history_of(shared)
    assert shared == _session()
    assert sorted(_reads(history), key=str) == sorted(DEEP_READ, key=str)
    assert shared != {"tokens": 3} and (shared != _session()) is False
    assert shared["history"] == ["hi"] and shared["history"] != ["ho"]
    assert shared["history"] < ["z"] and shared["history"] >= ["hi"]
    _reads(history)
    with pytest.raises(TypeError):
        hash(shared)


def test_c_code_reading_the_storage_sees_every_change() -> None:
    session = _session()
    shared = track(session, name="s")
    shared["tokens"] = 4
    shared["meta"]["done"] = 1
    shared["history"].append("x")
    shared["history"].insert(0, "first")
    del shared["meta"]["done"]
    # dict.__getitem__ and list.__iter__ read the subclass's own storage, as C code does.
    assert dict.__getitem__(shared, "tokens") == 4
    assert dict.__getitem__(shared, "meta") == {} and dict.__len__(shared["meta"]) == 0
    assert list(list.__iter__(shared["history"])) == ["first", "hi", "x"]
    assert session == {"history": ["first", "hi", "x"], "meta": {}, "tokens": 4}


def test_the_nested_parts_keep_their_wrapper_and_their_path() -> None:
    shared = track({"items": [{"n": 1}, {"n": 2}], "a": {"x": 1}}, name="s")
    history = history_of(shared)
    assert shared["a"] is shared["a"]
    shared["items"].insert(0, {"n": 0})
    assert shared["items"][1]["n"] == 1  # the item that moved up one is read at its new path
    assert _reads(history)[-1] == ("read", "s.items.1.n", 1)
    moved = shared.pop("a")
    shared["b"] = moved  # moved: recorded under where it sits now
    assert shared["b"] is moved
    shared["b"]["x"] = 2
    assert _reads(history)[-1] == ("write", "s.b.x", 2)


def test_building_a_tracked_class_the_usual_way_gives_plain_data() -> None:
    # dataclasses.asdict builds with type(x)(...): that must be plain data, not a wrapper.
    shared = track({"a": [1]})
    assert type(type(shared)({"k": 1})) is dict
    assert type(type(shared["a"])([1, 2])) is list


def test_dict_methods_that_read_and_change_are_one_step_with_a_read() -> None:
    shared = track({"a": 1, "b": 2, "c": 3}, name="d")
    history = history_of(shared)
    assert shared.pop("a") == 1 and shared.pop("zz", None) is None
    assert _reads(history) == [("read", "d.a", 1), ("delete", "d.a", None), ("read", "d.zz", None)]
    assert shared.setdefault("b", 9) == 2 and shared.setdefault("n", 7) == 7
    assert _reads(history) == [("read", "d.b", 2), ("read", "d.n", None), ("write", "d.n", 7)]
    assert shared.popitem() == ("n", 7)
    shared.clear()
    assert [op for op, _, _ in _reads(history)] == ["read", "delete", "delete", "delete"]
    with pytest.raises(KeyError):
        shared["b"]
    with pytest.raises(KeyError):
        shared.popitem()


def test_a_writes_version_read_is_the_version_its_agent_last_read() -> None:
    shared = track({"n": 0, "m": {"k": 0}}, name="s")
    with agent("A"):
        seen = shared["n"]  # v0
    with agent("B"):
        shared["n"] = 5  # blind: B read nothing
        copied = copy.deepcopy(shared)  # a read of s.n at v1 and of s.m.k at v0
    with agent("A"):
        shared["n"] = seen + 1  # from A's copy of v0, though v1 is current
    with agent("B"):
        shared["m"]["k"] = copied["m"]["k"] + 1
        shared["n"] = copied["n"] + 1
    writes = [e for e in history_of(shared).events if e.op == "write"]
    assert [(e.agent, e.key, e.version_read, e.version_written) for e in writes] == [
        ("B", "s.n", None, 1),
        ("A", "s.n", 0, 2),
        ("B", "s.m.k", 0, 1),
        ("B", "s.n", 1, 3),
    ]
    # The checker sees the same thing: both of B's writes of s.n are lost by someone.
    keys = [(f.kind, f.agents) for f in check(history_of(shared)).findings]
    assert ("lost-update", ("A", "B")) in keys and ("lost-update", ("B", "A")) in keys


def test_atomic_list_ops_keep_the_version_just_before() -> None:
    shared = track([], name="log")
    with agent("A"):
        shared.append(1)
    with agent("B"):
        shared.append(2)
    assert [(e.version_read, e.version_written) for e in history_of(shared).events] == [
        (0, 1),
        (1, 2),
    ]


# --- objects ------------------------------------------------------------------------------


@dataclasses.dataclass
class Session:
    tokens: int = 0
    history: list[str] = dataclasses.field(default_factory=list)
    meta: dict[str, int] = dataclasses.field(default_factory=dict)


def test_a_dataclass_is_tracked_attribute_by_attribute() -> None:
    raw = Session(1, ["x"], {"k": 1})
    session = track(raw, name="session")
    assert isinstance(session, Session) and dataclasses.is_dataclass(session)
    assert repr(session) == repr(raw)
    with agent("A"):
        session.tokens = session.tokens + 1
        session.history.append("y")
        session.history += ["z"]
        session.meta["k"] = 2
    assert raw == Session(2, ["x", "y", "z"], {"k": 2})
    assert [(e.agent, e.op, e.key, e.value) for e in history_of(session).events] == [
        ("A", "read", "session.tokens", 1),
        ("A", "write", "session.tokens", 2),
        ("A", "append", "session.history", "y"),
        ("A", "extend", "session.history", ["z"]),
        ("A", "write", "session.meta.k", 2),
    ]


def test_a_tracked_dataclass_copies_to_plain_data() -> None:
    raw = Session(1, ["x"], {"k": 1})
    session = track(raw, name="s")
    history = history_of(session)
    as_dict = dataclasses.asdict(session)
    assert as_dict == {"tokens": 1, "history": ["x"], "meta": {"k": 1}} and not _has_wrapper(
        as_dict
    )
    assert ("read", "s.tokens", 1) in _reads(history)
    deep = copy.deepcopy(session)
    assert type(deep) is Session and deep == raw and type(deep.history) is list
    assert _reads(history)[0] == ("read", "s", None)
    loaded = pickle.loads(pickle.dumps(session))
    assert type(loaded) is Session and loaded == raw and type(loaded.meta) is dict
    shallow = copy.copy(session)
    assert type(shallow) is Session and shallow.history is session.history  # still tracked
    replaced = dataclasses.replace(session, tokens=5)
    assert type(replaced) is Session and replaced.tokens == 5
    assert session == raw and session != Session() and session == Session(1, ["x"], {"k": 1})
    assert json.dumps(dataclasses.asdict(session)) == json.dumps(dataclasses.asdict(raw))


def test_a_frozen_dataclass_refuses_writes_as_the_original_does() -> None:
    @dataclasses.dataclass(frozen=True)
    class Point:
        x: int

    point = track(Point(1), name="p")
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.x = 2  # type: ignore[misc]
    assert point.x == 1 and hash(point) == hash(Point(1))
    assert [e.op for e in history_of(point).events] == ["read"]


class Counter:
    """A plain class: attributes, a property, a method."""

    def __init__(self) -> None:
        self.count = 0
        self.seen: list[str] = []

    @property
    def double(self) -> int:
        return self.count * 2

    @double.setter
    def double(self, value: int) -> None:
        self.count = value // 2

    def bump(self, who: str) -> None:
        self.count += 1
        self.seen.append(who)


def test_a_plain_object_is_tracked_through_its_methods_and_properties() -> None:
    raw = Counter()
    counter = track(raw, name="c")
    assert isinstance(counter, Counter)
    counter.bump("A")
    assert counter.double == 2
    counter.double = 10
    del counter.seen
    assert raw.count == 5 and not hasattr(raw, "seen")
    assert [(e.op, e.key) for e in history_of(counter).events] == [
        ("read", "c.count"),
        ("write", "c.count"),
        ("append", "c.seen"),
        ("read", "c.count"),
        ("write", "c.count"),
        ("delete", "c.seen"),
    ]
    assert vars(counter) == {"count": 5}
    assert history_of(counter).events[-1].key == "c.count"  # vars() read the object


def test_objects_nested_in_state_are_tracked_and_plain_objects_are_values() -> None:
    shared = track({"session": Session(), "client": Counter()}, name="s")
    assert isinstance(shared["session"], Session)
    shared["session"].tokens = 3
    assert history_of(shared).events[-1].key == "s.session.tokens"
    assert type(shared["client"]) is Counter  # a plain instance inside state: a value
    assert history_of(shared).events[-1].value is not None


class Inner(pydantic.BaseModel):
    n: int = 0


class Model(pydantic.BaseModel):
    tokens: int = 0
    history: list[str] = []
    inner: Inner = Inner()


def test_pydantic_models_are_tracked_and_dump_and_copy_to_plain_data() -> None:
    raw = Model(tokens=1, history=["a"])
    model = track(raw, name="m")
    history = history_of(model)
    assert isinstance(model, Model) and str(model) == str(raw) and repr(model) == repr(raw)
    with agent("A"):
        model.tokens = model.tokens + 1
        model.history.append("b")
        model.inner.n = 5
    assert raw.tokens == 2 and raw.history == ["a", "b"] and raw.inner.n == 5
    assert "tokens" in raw.model_fields_set and "tokens" in model.model_fields_set
    assert [(op, key) for op, key, _ in _reads(history)] == [
        ("read", "m.tokens"),
        ("write", "m.tokens"),
        ("append", "m.history"),
        ("write", "m.inner.n"),
    ]
    expected = {"tokens": 2, "history": ["a", "b"], "inner": {"n": 5}}
    assert model.model_dump() == expected and json.loads(model.model_dump_json()) == expected
    assert ("read", "m.tokens", 2) in _reads(history)  # the dump read the model
    for copied in (
        model.model_copy(deep=True),
        copy.deepcopy(model),
        pickle.loads(pickle.dumps(model)),
    ):
        assert type(copied) is Model and copied == raw and type(copied.history) is list
    shallow = model.model_copy(update={"tokens": 9})
    assert type(shallow) is Model and shallow.tokens == 9 and raw.tokens == 2
    assert model == raw and model != Model()


def test_pydantic_validation_runs_on_writes_and_the_stored_value_is_recorded() -> None:
    class Strict(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(validate_assignment=True)
        n: int = 0

    class Frozen(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(frozen=True)
        n: int = 0

    strict = track(Strict(), name="s")
    strict.n = "5"
    assert strict.n == 5
    with pytest.raises(pydantic.ValidationError):
        strict.n = "five"
    assert [(e.op, e.value) for e in history_of(strict).events] == [("write", 5), ("read", 5)]
    frozen = track(Frozen(), name="f")
    with pytest.raises(pydantic.ValidationError):
        frozen.n = 1
    assert history_of(frozen).events == [] and hash(frozen) == hash(Frozen())


def test_tracking_objects_imports_nothing_outside_the_standard_library() -> None:
    code = (
        "import sys, dataclasses, racefree\n"
        "@dataclasses.dataclass\n"
        "class S:\n"
        "    n: int = 0\n"
        "s = racefree.track(S()); s.n = s.n + 1\n"
        "racefree.track({'a': [S()]})['a'][0].n = 2\n"
        "print('pydantic' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


class HalfSlotted:
    __slots__ = ("__dict__", "__secret", "kept")

    def __init__(self) -> None:
        self.kept = 1
        self.__secret = 2
        self.free = 3

    def secret(self) -> int:
        return self.__secret


def test_attributes_in_slots_beside_a_dict_are_read_and_written_through() -> None:
    raw = HalfSlotted()
    obj = track(raw, name="h")
    assert (obj.kept, obj.secret(), obj.free) == (1, 2, 3)
    obj.kept = 5
    del obj.kept
    assert not hasattr(raw, "kept") and not hasattr(obj, "kept")
    # Slot reads are not recorded (the docstring says so); writes and __dict__ reads are.
    assert [(e.op, e.key) for e in history_of(obj).events] == [
        ("read", "h.free"),
        ("write", "h.kept"),
        ("delete", "h.kept"),
    ]


def test_changes_made_to_the_original_directly_are_seen_through_the_wrapper() -> None:
    session = _session()
    shared = track(session, name="s")
    session["tokens"] = 99
    session["history"].append("direct")
    session["new"] = {"k": 1}
    del session["meta"]
    assert shared["tokens"] == 99 and list(shared["history"]) == ["hi", "direct"]
    assert shared["new"]["k"] == 1 and "meta" not in shared
    assert shared == session and json.dumps(shared) == json.dumps(session)
    shared.copy()  # a whole read: what C code reads directly is current again
    assert dict.copy(shared) == session
    shared["history"].append("tracked")  # the wrapper's own storage follows the original
    assert list.__len__(shared["history"]) == 3 and session["history"][-1] == "tracked"
    again = track(session)  # a second wrapper: both read the original
    again["tokens"] = 7
    assert shared["tokens"] == 7

    raw = Session(1, ["x"], {"k": 1})
    obj = track(raw, name="o")
    raw.tokens = 5
    raw.history.append("y")
    del raw.meta
    assert obj.tokens == 5 and list(obj.history) == ["x", "y"]
    assert not hasattr(obj, "meta")


@pytest.mark.parametrize(
    "copy_of", [list, tuple, sorted, lambda xs: [*xs]], ids=["list", "tuple", "sorted", "star"]
)
def test_copying_a_tracked_list_is_one_read(copy_of: Any) -> None:
    # C code begins the iteration, then asks the length as a size hint: two reads, with a
    # switch point between them, showed the copy as made after writes it had missed.
    shared = track(["a"], name="buffer")
    with agent("flusher"):
        assert list(copy_of(shared)) == ["a"]
        assert len(shared) == 1  # a len() of its own is a read of its own
    assert _ops(history_of(shared)) == [
        ("flusher", "read", "buffer"),
        ("flusher", "read", "buffer"),
    ]


def test_copying_a_tracked_list_gives_the_explorer_no_switch_point_inside_the_copy() -> None:
    from racefree.explore import explore

    def copy_while_another_appends() -> list[tuple[int, int]]:
        buffer = track(["first"], name="buffer")
        seen: list[tuple[int, int]] = []

        def flusher() -> None:
            batch = list(buffer)
            read = history_of(buffer).events[-1]  # the copy's one read
            seen.append((len(batch), read.version_read or 0))

        threads = [
            threading.Thread(target=flusher),
            threading.Thread(target=lambda: buffer.append("second")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return seen

    outcomes: set[tuple[int, int]] = set()
    result = explore(
        copy_while_another_appends,
        strategy="exhaustive",
        invariants=[lambda seen: outcomes.update(seen) or True],
        save_dir=None,
    )
    assert result.complete
    # What the copy holds is what its read saw: one item at v0, or two after the append.
    assert outcomes == {(1, 0), (2, 1)}


def test_a_len_of_its_own_after_an_iteration_is_a_read_of_its_own() -> None:
    shared = track(["a"], name="lst")
    with agent("reader"):
        items = [x for x in shared]  # an iteration with no length hint
        assert len(shared) == len(items)  # another call: another read

    async def two_tasks() -> None:
        async def iterate() -> None:
            with agent("A"):
                list(iter(shared))
                await asyncio.sleep(0)

        async def measure() -> None:
            with agent("B"):
                len(shared)

        await asyncio.gather(iterate(), measure())

    asyncio.run(two_tasks())  # one thread, two tasks: B's len() is B's read
    assert _ops(history_of(shared)) == [
        ("reader", "read", "lst"),
        ("reader", "read", "lst"),
        ("A", "read", "lst"),
        ("B", "read", "lst"),
    ]
