"""`ccbridge-viewer`: serve the viewer over the capture database (127.0.0.1:8083 unless told otherwise).

Settings come from the command line, then the environment (CCBRIDGE_VIEWER_PASSWORD, CCBRIDGE_VIEWER_TOKEN,
CCBRIDGE_STORAGE_URL), then the `viewer:` and `storage:` sections of config.yaml. A bind address other than
loopback is refused unless a password or token is set: the captures hold prompts, code and fingerprints of keys.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import uvicorn

from ccbridge.errors import ConfigError
from ccbridge.settings import load_settings, storage_url
from ccbridge.storage.read import open_engine

from .app import create_app
from .auth import is_loopback


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ccbridge-viewer", description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="address to bind (default: config viewer.host, else 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: config viewer.port, else 8083; 0 picks a free one)")
    parser.add_argument("--db", help="SQLAlchemy URL of the capture database "
                        "(default: $CCBRIDGE_STORAGE_URL, else config storage.url, else the local SQLite file)")
    parser.add_argument("--config", help="config.yaml to read (default: $CCBRIDGE_CONFIG, else ./config.yaml)")
    parser.add_argument("--password", help="require HTTP basic auth with this password (any user name)")
    parser.add_argument("--token", help="require `Authorization: Bearer <token>`")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = load_settings(args.config, check_keys=False)
    except ConfigError as exc:
        print(f"ccbridge-viewer: {exc}", file=sys.stderr)
        return 2
    host = args.host or config.viewer.host
    port = args.port if args.port is not None else config.viewer.port
    password = args.password or os.environ.get("CCBRIDGE_VIEWER_PASSWORD") or config.viewer.password
    token = args.token or os.environ.get("CCBRIDGE_VIEWER_TOKEN") or config.viewer.token
    if not is_loopback(host) and not (password or token):
        print(f"ccbridge-viewer: refusing to listen on {host}: that address is reachable from other machines and "
              "the captures hold your prompts and code. Set a password or token (--password / --token, "
              "CCBRIDGE_VIEWER_PASSWORD / CCBRIDGE_VIEWER_TOKEN, or viewer.password / viewer.token in "
              "config.yaml), or bind 127.0.0.1.", file=sys.stderr)
        return 2

    url = storage_url(args.db, config)
    app = create_app(open_engine(url), password=password, token=token,
                     loopback_hosts_only=is_loopback(host) and not (password or token), prices=config.prices)
    print(f"ccbridge-viewer: reading {url}", file=sys.stderr, flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
