"""The shared runtime inside mitmproxy's test context: options, config errors, where captures go, the writer's
life cycle (kept, replaced, closed) and the lines a user reads in the log."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons

from ccbridge import runtime as runtime_module
from ccbridge.routes import ENV_MAPPINGS
from ccbridge.runtime import OPTIONS, Runtime
from ccbridge.settings import STORAGE_URL_ENV
from tests.support.builders import Conversation, text, user
from tests.support.stored import flow_ids


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No config.yaml, variable or data directory of the person running the tests takes part."""
    for name in ("CCBRIDGE_CONFIG", STORAGE_URL_ENV, ENV_MAPPINGS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data-home"))
    monkeypatch.chdir(tmp_path)


class StandInWriter:
    """Takes the writer process's place where a test is about where captures go, not about writing them."""

    def __init__(self, url: str, journal_dir: Path, *, batch_size: int, batch_seconds: float) -> None:
        self.url, self.directory = url, journal_dir
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def summary(self) -> str:
        return "stand-in"


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime_module, "WriterProcess", StandInWriter)


def writer_url(runtime: Runtime) -> str:
    writer = runtime.writer
    assert isinstance(writer, StandInWriter) and runtime.storage_url == writer.url
    return writer.url


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    runtime = Runtime()
    yield runtime
    runtime.done()  # stops the writer process a test left running


@pytest.fixture
def tctx(runtime: Runtime) -> Iterator[taddons.context]:
    with taddons.context(runtime) as context:
        yield context


def sqlite(tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / name}"


def config_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def one_exchange(prompt: str = "hello"):
    return Conversation("session-1", [time.time()]).turn([user(prompt)], [text("hi")])


def test_load_declares_the_options_empty_by_default(tctx: taddons.context) -> None:
    for name in OPTIONS:
        assert getattr(tctx.options, name) == ""


@pytest.mark.parametrize(("config", "key"), [
    ("storage:\n  batch_size: 0\n", "storage.batch_size"),
    ("capture:\n  hostz: [api.anthropic.com]\n", "capture.hostz"),
])
def test_a_wrong_config_stops_start_up_naming_the_key(tctx: taddons.context, runtime: Runtime, tmp_path: Path,
                                                        config: str, key: str) -> None:
    path = config_file(tmp_path, config)
    with pytest.raises(exceptions.OptionsError, match=rf"^ccbridge config: {re.escape(key)}\b"):
        tctx.configure(runtime, ccbridge_config=path, ccbridge_journal_dir=str(tmp_path / "journal"))
    assert runtime.writer is None


@pytest.mark.usefixtures("stand_in")
def test_a_database_that_cannot_be_opened_stops_start_up_with_its_url(tctx: taddons.context, runtime: Runtime,
                                                                       tmp_path: Path) -> None:
    with pytest.raises(exceptions.OptionsError, match=re.escape("storage.url 'nosuchdriver://x': cannot open")):
        tctx.configure(runtime, ccbridge_storage_url="nosuchdriver://x", ccbridge_journal_dir=str(tmp_path / "j"))


@pytest.mark.usefixtures("stand_in")
def test_the_storage_url_is_the_option_then_the_environment_then_the_config(
        tctx: taddons.context, runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from_config, from_env, from_option = (sqlite(tmp_path, f"{n}.db") for n in ("config", "env", "option"))
    path = config_file(tmp_path, f"storage:\n  url: {from_config}\n")
    monkeypatch.setenv(STORAGE_URL_ENV, from_env)
    tctx.configure(runtime, ccbridge_config=path, ccbridge_journal_dir=str(tmp_path / "journal"))
    assert writer_url(runtime) == from_env
    tctx.configure(runtime, ccbridge_storage_url=from_option)
    assert writer_url(runtime) == from_option
    monkeypatch.delenv(STORAGE_URL_ENV)
    tctx.configure(runtime, ccbridge_storage_url="")
    assert writer_url(runtime) == from_config


@pytest.mark.usefixtures("stand_in")
def test_the_journal_is_the_option_then_the_config_then_the_data_directory(
        tctx: taddons.context, runtime: Runtime, tmp_path: Path) -> None:
    url = sqlite(tmp_path, "cc.db")
    tctx.configure(runtime, ccbridge_storage_url=url)
    assert runtime.writer is not None
    assert runtime.writer.directory == tmp_path / "data-home" / "ccbridge" / "journal"
    path = config_file(tmp_path, f"storage:\n  journal_dir: {tmp_path / 'configured'}\n")
    tctx.configure(runtime, ccbridge_config=path)
    assert runtime.writer.directory == tmp_path / "configured"
    tctx.configure(runtime, ccbridge_journal_dir=str(tmp_path / "chosen"))
    assert runtime.writer.directory == tmp_path / "chosen"


def test_the_same_url_keeps_the_writer_another_closes_it_after_writing_what_it_had(
        tctx: taddons.context, runtime: Runtime, tmp_path: Path) -> None:
    first_url, second_url = sqlite(tmp_path, "first.db"), sqlite(tmp_path, "second.db")
    path = config_file(tmp_path, "capture:\n  max_body_mb: 1\n")
    tctx.configure(runtime, ccbridge_storage_url=first_url, ccbridge_journal_dir=str(tmp_path / "journal"))
    first = runtime.writer
    assert first is not None
    exchange = one_exchange()
    runtime.submit(exchange)

    tctx.configure(runtime, ccbridge_config=path)  # the config is read again, the database is the same
    assert runtime.writer is first
    assert runtime.max_body_bytes == 1024 * 1024

    tctx.configure(runtime, ccbridge_storage_url=second_url)
    assert runtime.writer is not first and runtime.storage_url == second_url
    assert not first.child.process.is_alive()
    assert flow_ids(first_url) == [exchange.flow_id]


@pytest.mark.usefixtures("stand_in")
def test_warnings_of_the_settings_are_logged(tctx: taddons.context, runtime: Runtime, tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    path = config_file(tmp_path, "\n".join([
        "providers:",
        "  ollama: {base_url: 'http://127.0.0.1:11434/v1', api_key: local}",
        "  spare: {base_url: 'http://127.0.0.1:8000/v1', api_key: local}",
        "subagents:",
        "  mappings: {Explore: ollama/qwen3:8b}",
    ]) + "\n")
    with caplog.at_level(logging.WARNING, logger="ccbridge"):
        tctx.configure(runtime, ccbridge_config=path, ccbridge_storage_url=sqlite(tmp_path, "cc.db"),
                       ccbridge_journal_dir=str(tmp_path / "journal"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["ccbridge config: providers.spare: no route uses this provider, so its key is not checked"]


def test_submit_before_configure_logs_the_flow_and_does_not_raise(runtime: Runtime,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    exchange = one_exchange()
    with caplog.at_level(logging.ERROR, logger="ccbridge"):
        runtime.submit(exchange)
    assert [r.getMessage() for r in caplog.records] == [
        f"ccbridge: storage is not open; flow {exchange.flow_id} not recorded"]


def test_done_writes_what_was_submitted_closes_the_writer_and_logs_the_counts(
        tctx: taddons.context, runtime: Runtime, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = sqlite(tmp_path, "cc.db")
    tctx.configure(runtime, ccbridge_storage_url=url, ccbridge_journal_dir=str(tmp_path / "journal"))
    writer = runtime.writer
    assert writer is not None
    conversation = Conversation("session-1", [time.time()])
    exchanges = [conversation.turn([user(f"turn {i}")], [text("ok")]) for i in range(3)]
    for exchange in exchanges:
        runtime.submit(exchange)
    with caplog.at_level(logging.INFO, logger="ccbridge"):
        runtime.done()
    assert runtime.writer is None and not writer.child.process.is_alive()
    assert "ccbridge: 3 exchanges recorded, 0 failed, 0 pending in the journal" in caplog.messages
    assert flow_ids(url) == [e.flow_id for e in exchanges]
