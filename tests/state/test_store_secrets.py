"""No output of a store ever shows a credential: not its repr, its url, a message, a traceback.

Every URL here is hostile in some way (a password with ``/``, ``?``, ``#`` or
``@`` in it, a password as a query option, a port or database that is no
number, an unknown option...). Whatever the store does with it, opening it
and using it, the whole text that a user could see (the message, and the
traceback with every chained exception) holds no part of the secret.
"""

from __future__ import annotations

import asyncio
import traceback

import pytest

import racefree
from racefree import RacefreeError
from racefree.state.backends import credentials, redact
from tests.state.redis_server import TEST_PASSWORD, RedisServer

SECRET = "Zq7secretA"  # every hostile URL below hides this text (or its pieces) somewhere
PIECES = ("Zq7secretA", "Zq7secretB", "Zq7")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:pw@host:1/0", "redis://***@host:1/0"),
        ("redis://pw@host:1/0", "redis://***@host:1/0"),
        ("redis://host:1/0", "redis://host:1/0"),
        ("redis://host:1/0?password=pw&namespace=a", "redis://host:1/0?password=***&namespace=a"),
        (
            "redis://host/0?namespace=a&auth_token=x%20y",
            "redis://host/0?namespace=a&auth_token=***",
        ),
        ("redis://:pa/ss@host/0", "redis://***@host/0"),
        ("redis://:pa?ss@host/0", "redis://***@host/0"),
        ("redis://:pa#ss@host/0", "redis://***@host/0"),
        ("redis://:p@ss@host:99/0", "redis://***@host:99/0"),
        ("user:pw@host", "***@host"),
        ("sqlite:///tmp/a.db", "sqlite:///tmp/a.db"),
        ("sqlite:////tmp/mail@home.db", "sqlite:////tmp/mail@home.db"),
        ("sqlite:///a.db?password=pw", "sqlite:///a.db?password=***"),
    ],
)
def test_redact_masks_the_user_info_and_every_password_option(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_credentials_lists_the_raw_and_decoded_secrets_longest_first() -> None:
    assert credentials("redis://user:p%40ss@h/0?password=a+b") == [
        "user:p%40ss",
        "user:p@ss",
        "p%40ss",
        "p@ss",
        "a b",
        "a+b",
    ]


HOSTILE = [
    f"redis://:{SECRET}@127.0.0.1:1/0",
    f"redis://admin:{SECRET}@127.0.0.1:1/0",
    f"redis://{SECRET}@127.0.0.1:1/0",
    f"rediss://:{SECRET}@127.0.0.1:1/0",
    f"redis://127.0.0.1:1/0?password={SECRET}",
    f"redis://127.0.0.1:1/0?namespace=a&password={SECRET}&socket_timeout=soon",
    f"redis://:{SECRET}@127.0.0.1:1/0?bogus=1",
    f"redis://:{SECRET}@127.0.0.1:1/0?namespace=bad name",
    f"redis://:{SECRET}@127.0.0.1:notaport/0",
    f"redis://:{SECRET}@127.0.0.1:99999/0",
    f"redis://:{SECRET}@[::1/0",
    f"redis://:{SECRET}@127.0.0.1:1/zero",
    "redis://:Zq7secretA/Zq7secretB@127.0.0.1:1/0",
    "redis://:Zq7secretA?Zq7secretB@127.0.0.1:1/0",
    "redis://:Zq7secretA#Zq7secretB@127.0.0.1:1/0",
    "redis://:Zq7secretA@Zq7secretB@127.0.0.1:1/0",
    "redis://:Zq7secretA%2FZq7secretB@127.0.0.1:1/0",
    f"redis://:{SECRET}@/0",
    f"postgres://:{SECRET}@db/agents",
    f"sqlite:///store.db?password={SECRET}",
    f"memory://?password={SECRET}",
]


def _everything_shown(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def _assert_no_secret(text: str) -> None:
    for piece in PIECES:
        assert piece not in text


@pytest.mark.parametrize("url", HOSTILE)
def test_no_error_from_a_hostile_url_shows_its_secret(url: str) -> None:
    with pytest.raises(RacefreeError) as caught:
        racefree.open_store(url)
    _assert_no_secret(_everything_shown(caught.value))
    assert "***" in str(caught.value)

    async def main() -> None:
        with pytest.raises(RacefreeError) as failed:
            store = racefree.open_async_store(url)
            await store.aclose()
        _assert_no_secret(_everything_shown(failed.value))

    asyncio.run(main())


@pytest.mark.parametrize("form", ["user info", "query option"])
def test_a_store_with_a_password_never_shows_it(own_server: RedisServer, form: str) -> None:
    if form == "user info":
        url = own_server.url
    else:
        url = own_server.url.replace(f":{TEST_PASSWORD}@", "") + f"?password={TEST_PASSWORD}"
    store = racefree.open_store(url)
    astore = racefree.open_async_store(url)
    assert store.increment("n") == 1
    for shown in (repr(store), store.url, repr(astore), astore.url):
        assert TEST_PASSWORD not in shown
        assert "***" in shown
    wrong = url.replace(TEST_PASSWORD, "Zq7secretA")
    with pytest.raises(racefree.BackendUnavailableError) as refused:
        racefree.open_store(wrong)
    _assert_no_secret(_everything_shown(refused.value))
    own_server.stop()
    errors: list[BaseException] = []
    with pytest.raises(racefree.BackendUnavailableError) as caught:
        store.increment("n")
    errors.append(caught.value)

    async def main() -> None:
        with pytest.raises(racefree.BackendUnavailableError) as failed:
            await astore.get("n")
        errors.append(failed.value)
        await astore.aclose()

    asyncio.run(main())
    for error in errors:
        assert TEST_PASSWORD not in _everything_shown(error)
    store.close()
