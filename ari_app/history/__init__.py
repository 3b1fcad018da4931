"""The PBX's own call history: Redis store, settings, and the Asterisk CDR importer."""
from .settings import HistorySettings
from .store import HistoryStore, HistoryUnavailable, MemoryHistoryStore, RedisHistoryStore

__all__ = [
    "HistorySettings",
    "HistoryStore",
    "HistoryUnavailable",
    "MemoryHistoryStore",
    "RedisHistoryStore",
]
