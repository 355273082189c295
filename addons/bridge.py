"""ccbridge: see and steer what Claude Code sends to the Anthropic API.

Run in front of the API (reverse mode, what `make proxy` does):
    mitmdump -s addons/bridge.py --mode reverse:https://api.anthropic.com --listen-port 8082
    ANTHROPIC_BASE_URL=http://127.0.0.1:8082 claude

or as an explicit proxy (only the hosts in `capture.hosts` are recorded; everything else is left alone):
    mitmdump -s addons/bridge.py
    HTTPS_PROXY=http://127.0.0.1:8080 NODE_EXTRA_CA_CERTS=~/.mitmproxy/mitmproxy-ca-cert.pem claude

Options: `--set ccbridge_config=config.yaml`, `--set ccbridge_storage_url=sqlite:///path.db`.
This file only wires the parts together; each lives in the `ccbridge` package.
"""

from ccbridge.capture import Capture  # records every exchange, streams untouched
from ccbridge.metrics.addon import Metrics  # Prometheus metrics of what Capture records (metrics.port)
from ccbridge.routing.addon import Routing  # answers configured subagents with another provider
from ccbridge.runtime import Runtime  # options, config.yaml, storage writer

runtime = Runtime()

addons = [
    runtime,
    Routing(runtime),  # before Capture: Capture records what the client finally got
    Capture(runtime),
    Metrics(runtime),  # after Capture: it reads the answer's usage from what Capture kept
]
