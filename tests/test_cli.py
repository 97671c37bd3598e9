"""``bleeper serve`` as a user runs it: help, configuration, the event console, clean shutdown."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import pytest

from bleeper.config import ConfigError, ServeConfig, load_serve_config
from tests.helpers import ROOT, free_port, server_process


def bleeper(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI; a server it starts keeps its data in memory, never in the checkout."""
    full_env = {**os.environ, "BLEEPER_DB": ":memory:"} if env is None else {"BLEEPER_DB": ":memory:", **env}
    return subprocess.run([sys.executable, "-m", "bleeper", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=30, env=full_env)  # fmt: skip


def talk(port: int, data: bytes, wait: float = 0.3) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        time.sleep(wait)
        sock.settimeout(1)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    return out


def test_help_documents_every_option() -> None:
    top = bleeper("--help")
    assert top.returncode == 0 and "serve" in top.stdout
    serve = bleeper("serve", "--help")
    assert serve.returncode == 0
    text = serve.stdout.replace("\n", " ")
    for field in fields(ServeConfig):
        flag = {"uvloop": "--no-uvloop", "http": "--no-http"}.get(field.name, "--" + field.name.replace("_", "-"))
        assert flag in text, flag
    assert "BLEEPER_" in text and "TOML" in text


def test_version_and_no_command() -> None:
    assert bleeper("--version").stdout.startswith("bleeper ")
    assert bleeper().returncode == 2


def test_event_console_logs_connects_commands_and_disconnects_without_message_text() -> None:
    with server_process() as (proc, port):
        out = talk(port, b"NAME alice\r\nSAY secret patient detail\r\nQUIT\r\n")
        assert b"221 goodbye, alice" in out
        log = stop(proc)
    lines = log.splitlines()
    assert any("start Bleeper" in line and f"127.0.0.1:{port}" in line for line in lines)
    assert any(" connect 127.0.0.1:" in line and "(1 active)" in line for line in lines)
    assert any("alice SAY (21 chars)" in line for line in lines)
    assert any(re.search(r"disconnect alice: quit \(\d+ active\)", line) for line in lines)
    assert any(" stop:" in line for line in lines)
    assert "secret patient detail" not in log


def test_log_messages_shows_text_and_json_format_is_machine_readable() -> None:
    with server_process("--log-messages", "--log-format", "json") as (proc, port):
        talk(port, b"NAME bob\r\nSAY hello there\r\nQUIT\r\n")
        log = stop(proc)
    records = [json.loads(line) for line in log.splitlines()]
    events = [r.get("event") for r in records]
    assert events[:2] == ["audit-head", "start"] and "connect" in events and "disconnect" in events
    assert "stop" in events
    heads = [r["head"] for r in records if r.get("event") == "audit-head"]
    assert heads == ["0:" + "0" * 64, heads[1]] and heads[1].startswith("1:")  # the SAY was recorded
    say = next(r for r in records if r.get("command") == "SAY")
    assert say["who"] == "bob" and say["params"] == "hello there"
    gone = next(r for r in records if r.get("event") == "disconnect" and r["who"] == "bob")
    assert gone["reason"] == "quit" and isinstance(gone["active"], int)


def test_sigterm_tells_clients_and_exits_zero() -> None:
    with server_process() as (proc, port):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"NAME carol\r\n")
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        assert data.splitlines()[-1] == b"CLOSING server shutting down"
        proc.communicate(timeout=15)
        assert proc.returncode == 0
        sock.close()


def test_sigint_exits_zero() -> None:
    with server_process() as (proc, _port):
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=15)
        assert proc.returncode == 0


def test_port_in_use_says_what_to_do() -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = bleeper("serve", "--port", str(port))
    assert result.returncode == 1
    assert "address already in use" in result.stderr.lower() or "in use" in result.stderr
    assert "--port" in result.stderr


def test_bad_setting_says_what_to_do() -> None:
    result = bleeper("serve", "--log-level", "info", env={"PATH": "", "BLEEPER_PORT": "eighty"})
    assert result.returncode == 2 and "BLEEPER_PORT" in result.stderr and "int" in result.stderr


def test_bad_port_variable_for_clients_says_what_to_do() -> None:
    result = bleeper("send", "--to", "bob", "hi", env={"PATH": "", "BLEEPER_PORT": "eighty"})
    assert result.returncode == 2 and "BLEEPER_PORT='eighty'" in result.stderr and "--port" in result.stderr


def test_every_command_has_help() -> None:
    for command in ("serve", "chat", "send"):
        result = bleeper(command, "--help")
        assert result.returncode == 0 and "--host" in result.stdout and "--port" in result.stdout, command


def test_environment_variables_choose_the_port() -> None:
    port = free_port()
    with server_process(port=port, env={"BLEEPER_SERVER_NAME": "ward7"}) as (proc, _):
        assert b"220 ward7 " in talk(port, b"QUIT\r\n")
        stop(proc)


def test_config_layers_flags_over_env_over_file(tmp_path: Path) -> None:
    config_file = tmp_path / "bleeper.toml"
    config_file.write_text('[serve]\nport = 9001\nrate = 5\nserver-name = "file"\nlog_messages = true\n')
    config = load_serve_config({}, str(config_file), environ={})
    assert (config.port, config.rate, config.server_name, config.log_messages) == (9001, 5.0, "file", True)
    config = load_serve_config({}, str(config_file), environ={"BLEEPER_PORT": "9002", "BLEEPER_LOG_MESSAGES": "no"})
    assert (config.port, config.log_messages) == (9002, False)
    config = load_serve_config({"port": 9003}, str(config_file), environ={"BLEEPER_PORT": "9002"})
    assert config.port == 9003 and config.rate == 5.0


def test_config_errors_are_specific(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[serve]\nprot = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'prot'"):
        load_serve_config({}, str(bad), environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_serve_config({}, str(tmp_path / "missing.toml"), environ={})
    with pytest.raises(ConfigError, match="out of range"):
        load_serve_config({"port": 70000}, None, environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[serve\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_serve_config({}, str(broken), environ={})
    with pytest.raises(ConfigError, match='db_writer "fork" is unknown: use "process" or "thread"'):
        load_serve_config({}, None, environ={"BLEEPER_DB_WRITER": "fork"})
    assert load_serve_config({}, None, environ={"BLEEPER_DB_WRITER": "thread"}).db_writer == "thread"


def test_a_server_name_irc_cannot_carry_is_refused() -> None:
    from bleeper.config import ConfigError, ServeConfig

    for bad in ("", "two words", ":colon", "a\tb"):
        config = ServeConfig(server_name=bad)
        with pytest.raises(ConfigError, match="server_name"):
            config.validate()
