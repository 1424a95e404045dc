"""The job engine: submission, watching, fair queueing and deadlines (no Discord here)."""

from bot.engine.core import Engine, EngineError, EngineSettings, JobEvent

__all__ = ["Engine", "EngineError", "EngineSettings", "JobEvent"]
