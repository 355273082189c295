"""ccbridge: record, inspect and reroute Claude Code's traffic to the Anthropic API."""
