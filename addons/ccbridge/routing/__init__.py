"""Subagent routing: which requests go to which provider and model (`addon.py` is the mitmproxy addon)."""
