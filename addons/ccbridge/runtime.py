"""What the ccbridge addons share: the options, the validated config and the storage writer.

`load` declares the options, `configure` validates config.yaml (a wrong value stops mitmdump with a message
naming the key) and opens the storage, `done` flushes every pending write.
"""

from __future__ import annotations

import atexit
import logging

from mitmproxy import ctx, exceptions
from mitmproxy.addonmanager import Loader

from .captured import CapturedExchange
from .errors import ConfigError
from .settings import Settings, journal_dir, load_settings, storage_url
from .storage.db import open_engine
from .storage.process import WriterProcess

log = logging.getLogger("ccbridge")

OPTIONS = ("ccbridge_config", "ccbridge_storage_url", "ccbridge_journal_dir")


class Runtime:
    def __init__(self) -> None:
        self.config = Settings()
        self.writer: WriterProcess | None = None
        self.storage_url: str | None = None

    def load(self, loader: Loader) -> None:
        loader.add_option("ccbridge_config", str, "",
                          "Path of ccbridge's config.yaml (else $CCBRIDGE_CONFIG, else ./config.yaml).")
        loader.add_option("ccbridge_storage_url", str, "",
                          "SQLAlchemy URL of the capture database; overrides $CCBRIDGE_STORAGE_URL and "
                          "storage.url of config.yaml.")
        loader.add_option("ccbridge_journal_dir", str, "",
                          "Folder of the journal that holds captures until the database has them; overrides "
                          "storage.journal_dir of config.yaml (default: beside the default SQLite database).")

    def configure(self, updated: set[str]) -> None:
        if not updated & set(OPTIONS) and self.writer is not None:
            return
        try:
            config = load_settings(ctx.options.ccbridge_config or None)
        except ConfigError as exc:
            raise exceptions.OptionsError(f"ccbridge config: {exc}") from exc
        for warning in config.warnings:
            log.warning("ccbridge config: %s", warning)
        url = storage_url(ctx.options.ccbridge_storage_url or None, config)
        journal = journal_dir(ctx.options.ccbridge_journal_dir or None, config)
        if self.writer is None or url != self.storage_url or journal != self.writer.directory:
            try:
                engine = open_engine(url)  # here, so that a bad URL stops start-up with its reason
                shown = engine.url.render_as_string(hide_password=True)
                engine.dispose()
            except Exception as exc:
                raise exceptions.OptionsError(f"ccbridge storage.url {url!r}: cannot open: {exc}") from exc
            if self.writer is not None:  # first: the journal takes one writer at a time
                self.done()
            try:
                self.writer = WriterProcess(url, journal, batch_size=config.storage.batch_size,
                                            batch_seconds=config.storage.batch_seconds)
            except Exception as exc:
                raise exceptions.OptionsError(f"ccbridge journal {str(journal)!r}: cannot open: {exc}") from exc
            self.storage_url = url
            # mitmdump exits without `done` when an addon logs an error at start-up, and multiprocessing's exit
            # handler would wait forever for the child (it ignores SIGTERM); registered after that handler,
            # ours runs before it
            atexit.unregister(self.done)
            atexit.register(self.done)
            log.info("ccbridge: recording to %s through the journal %s", shown, journal)
        self.config = config

    @property
    def capture_hosts(self) -> tuple[str, ...]:
        return self.config.capture.hosts

    @property
    def max_body_bytes(self) -> int:
        return int(self.config.capture.max_body_mb * 1024 * 1024)

    @property
    def read_timeout_s(self) -> float:
        return self.config.upstream.read_timeout_s

    @property
    def redact_body_secrets(self) -> bool:
        return self.config.capture.redact_body_secrets

    def submit(self, captured: CapturedExchange) -> None:
        if self.writer is None:
            log.error("ccbridge: storage is not open; flow %s not recorded", captured.flow_id)
            return
        self.writer.submit(captured)

    def done(self) -> None:
        if self.writer is not None:
            self.writer.close()
            log.info("ccbridge: %s", self.writer.summary())
            self.writer = None
