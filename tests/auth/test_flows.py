"""The handshakes, byte for byte, without sockets (a flow is a generator)."""

from __future__ import annotations

import pytest

from layered_cache import AuthenticationError, ConfigurationError
from layered_cache.auth import AsciiAuth, MemCachierAuth, NoAuth


def run(flow_owner: MemCachierAuth | AsciiAuth, reply: bytes) -> bytes:
    flow = flow_owner.handshake("cache.example:11211")
    sent = next(flow)
    with pytest.raises(StopIteration):
        flow.send(reply)
    return sent


def test_no_auth_sends_nothing() -> None:
    assert list(NoAuth().handshake("h:1")) == []


def test_memcachier_handshake_bytes() -> None:
    assert run(MemCachierAuth("user1", "pä ss\r\nword"), b"STORED") == (
        b"set user1 0 0 12\r\np\xc3\xa4 ss\r\nword\r\n"
    )


def test_ascii_handshake_bytes() -> None:
    assert run(AsciiAuth("alice", "s3cret pass"), b"STORED") == (
        b"set auth 0 0 17\r\nalice s3cret pass\r\n"
    )


@pytest.mark.parametrize("auth", [MemCachierAuth("bob", "hunter2"), AsciiAuth("bob", "hunter2")])
@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (b"CLIENT_ERROR authentication failure", "CLIENT_ERROR authentication failure"),
        (b"", "closed the connection"),
        (b"NOT_STORED", "NOT_STORED"),
    ],
)
def test_refusal_names_user_and_server_never_password(
    auth: MemCachierAuth | AsciiAuth, reply: bytes, said: str
) -> None:
    flow = auth.handshake("cache.example:11211")
    next(flow)
    with pytest.raises(AuthenticationError) as caught:
        flow.send(reply)
    message = str(caught.value)
    assert "bob" in message
    assert "cache.example:11211" in message
    assert said in message
    assert "hunter2" not in message
    assert caught.value.server == "cache.example:11211"
    assert caught.value.username == "bob"


@pytest.mark.parametrize("cls", [MemCachierAuth, AsciiAuth])
@pytest.mark.parametrize(
    "username",
    ["", "two words", "crlf\r\nflush_all", "nul\x00", "tab\t", "del\x7f", "x" * 251, 42],
)
def test_unsafe_usernames_refused_before_any_io(cls: type, username: object) -> None:
    with pytest.raises(ConfigurationError, match="username") as caught:
        cls(username, "pw")
    assert "pw" not in str(caught.value).replace("password", "")


def test_ascii_auth_refuses_colon_in_username_and_newline_in_password() -> None:
    with pytest.raises(ConfigurationError, match=":"):
        AsciiAuth("a:b", "pw")
    with pytest.raises(ConfigurationError, match="line feed") as caught:
        AsciiAuth("a", "pw\nsecret")
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize("cls", [MemCachierAuth, AsciiAuth])
def test_empty_password_refused(cls: type) -> None:
    with pytest.raises(ConfigurationError, match="password is empty"):
        cls("user", "")


@pytest.mark.parametrize("auth", [MemCachierAuth("u", "topsecret"), AsciiAuth("u", "topsecret")])
def test_repr_hides_password(auth: object) -> None:
    assert "topsecret" not in repr(auth)
    assert "topsecret" not in str(auth)
