"""The PBX's own call history: Redis store, settings, and the Asterisk CDR importer."""
from ari_app.config.history_settings import HistorySettings
from ari_app.core.ports import HistoryStore
from ari_app.history.store import (
    HistoryUnavailable,
    MemoryHistoryStore,
    RedisHistoryStore,
)

__all__ = [
    "HistorySettings",
    "HistoryStore",
    "HistoryUnavailable",
    "MemoryHistoryStore",
    "RedisHistoryStore",
]
