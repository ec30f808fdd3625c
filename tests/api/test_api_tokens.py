"""Several API tokens per role, from the environment and from `durable serve --tokens FILE`:
every one of them works with its role's rights, anything else is refused; a tokens file that
cannot be used stops the server with a message that says what to fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from serving import Served, serve, server_env

from durable.api import TokenConfigError, load_tokens

ADMINS = ["admin-one-" + "a" * 20, "admin-two-" + "b" * 20, "admin-three-" + "c" * 20]
READERS = ["read-one-" + "r" * 20, "read-two-" + "s" * 20]
WORKFLOW = {"steps": [{"id": "a"}]}


def tokens_file(where: Path, admin: list[str], read: list[str]) -> Path:
    path = where / "tokens.toml"
    quoted = ", ".join
    path.write_text(
        f"admin = [{quoted(repr(t) for t in admin)}]\nread = [{quoted(repr(t) for t in read)}]\n"
    )
    return path


def check_rights(server: Served, admin: list[str], read: list[str]) -> None:
    """Each admin token writes, each read token reads but cannot write, others get 401."""
    for n, token in enumerate(admin):
        with server.client(token) as client:
            made = client.post("/workflows", json={"id": f"w{n}", **WORKFLOW})
            assert made.is_success, (token, made.text)
            assert client.get("/executions").status_code == 200
    for token in read:
        with server.client(token) as client:
            assert client.get("/workflows").status_code == 200, token
            ids = sorted(w["id"] for w in client.get("/workflows").json()["workflows"])
            assert ids == [f"w{n}" for n in range(len(admin))]
            # A query changes nothing: a read token may ask (404: there is no such run).
            assert client.post("/executions/nope/queries/q", json={}).status_code == 404
            refused = client.post("/workflows", json={"id": "r", **WORKFLOW})
            assert refused.status_code == 403 and "read-only" in refused.json()["error"], token
    for wrong in (None, "not-a-token-not-a-token", admin[0] + "x", read[0][:-1]):
        with server.client(wrong) as client:
            assert client.get("/executions").status_code == 401, wrong


def test_several_tokens_per_role_from_the_environment(tmp_path: Path) -> None:
    env = {
        "DURABLE_API_TOKEN": " , ".join(ADMINS),  # spaces and empty items are ignored
        "DURABLE_API_READ_TOKEN": f"{READERS[0]},{READERS[1]},",
    }
    with serve(tmp_path, env=env) as server:
        check_rights(server, ADMINS, READERS)


def test_every_token_of_a_tokens_file(tmp_path: Path) -> None:
    path = tokens_file(tmp_path, ADMINS, READERS)
    with serve(tmp_path, "--tokens", str(path)) as server:
        check_rights(server, ADMINS, READERS)


def test_environment_and_file_tokens_add_up(tmp_path: Path) -> None:
    path = tokens_file(tmp_path, ADMINS[1:], READERS[1:])
    environ = {"DURABLE_API_TOKEN": ADMINS[0], "DURABLE_API_READ_TOKEN": READERS[0]}
    tokens = load_tokens(str(path), environ)
    assert [tokens.role(t) for t in ADMINS] == ["admin"] * 3
    assert [tokens.role(t) for t in READERS] == ["read"] * 2
    assert tokens.role("x" * 30) is None
    # A token in both lists has the higher role.
    both = load_tokens(None, {"DURABLE_API_TOKEN": ADMINS[0], "DURABLE_API_READ_TOKEN": ADMINS[0]})
    assert both.role(ADMINS[0]) == "admin"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("admin = [", "is not valid TOML"),
        ('admins = ["' + "a" * 20 + '"]', "unknown key 'admins'; use admin = [...] and read"),
        ('admin = "' + "a" * 20 + '"', "admin must be a list of non-empty strings"),
        ('read = ["' + "a" * 20 + '", ""]', "read must be a list of non-empty strings"),
        ("read = [42]", "read must be a list of non-empty strings"),
        ('admin = ["short"]', "API tokens must be at least 16 characters"),
        (b"admin = ['\xff']", "cannot read tokens file"),
    ],
)
def test_a_bad_tokens_file_says_what_is_wrong(
    tmp_path: Path, content: str | bytes, message: str
) -> None:
    path = tmp_path / "tokens.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(TokenConfigError) as caught:
        load_tokens(str(path), {})
    assert message in str(caught.value)


def test_durable_serve_refuses_a_bad_or_missing_tokens_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('admin = ["' + "a" * 20 + '"]\nwrite = []\n')
    for path, message in (
        (bad, f"tokens file {bad}: unknown key 'write'"),
        (tmp_path / "missing.toml", f"cannot read tokens file {tmp_path / 'missing.toml'}"),
    ):
        command = [sys.executable, "-m", "durable", "serve", "--port", "0", "--tokens", str(path)]
        done = subprocess.run(
            [*command, "--db", f"sqlite:///{tmp_path / 'r.db'}"],
            capture_output=True,
            text=True,
            timeout=30,  # (a server that ignored the file would listen until then)
            env=server_env(tmp_path),
        )
        assert done.returncode == 2, done.stderr
        assert message in done.stderr, done.stderr
    assert not (tmp_path / "r.db").exists()  # refused before opening anything
