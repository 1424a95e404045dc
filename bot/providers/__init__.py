"""Backends that run Midjourney jobs, each behind the same `Provider` protocol."""
