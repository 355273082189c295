"""Prometheus metrics from the proxy: the addon (`addon.py`), its families (`families.py`), the answer's usage."""
