"""History settings as written in YAML: windows as "2h", "1d", "180d" or plain seconds."""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from ari_app.core.history_class import Windows

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_RE = re.compile(r"\s*([0-9]{1,6})\s*([smhdw])\s*", re.ASCII)
MAX_WINDOW = timedelta(days=3650)  # ten years: anything longer is a typo


def parse_duration(value: object) -> timedelta:
    """"90s", "15m", "2h", "1d", "2w", or a non-negative number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):  # bool is an int subclass: `true` in YAML is not a duration
        raise ValueError("expected a duration such as 2h, 1d, 180d or seconds")
    if isinstance(value, int | float):
        if value != value or value < 0 or value > MAX_WINDOW.total_seconds():  # NaN too
            raise ValueError("seconds out of range")
        return timedelta(seconds=value)
    if isinstance(value, str):
        if value.strip().isdigit() and len(value.strip()) <= 9:
            return timedelta(seconds=int(value))
        m = _DURATION_RE.fullmatch(value)
        if m:
            return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    raise ValueError("expected a duration such as 2h, 1d, 180d or seconds")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class HistorySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    callback_window: Duration = timedelta(hours=2)
    repeat_window: Duration = timedelta(days=1)
    old_window: Duration = timedelta(days=180)
    key_prefix: str = Field("caseline:hist:", pattern=r"^[A-Za-z0-9:_.\-]{1,64}$")
    max_contacts: int = Field(50, ge=1, le=1000)  # newest contacts read per call

    @model_validator(mode="after")
    def _check_windows(self) -> HistorySettings:
        for name in ("callback_window", "repeat_window", "old_window"):
            value = getattr(self, name)
            if value <= timedelta(0) or value > MAX_WINDOW:
                raise ValueError(f"{name} must be > 0 and <= {MAX_WINDOW.days}d")
        self.windows()  # same rules as the core (old >= repeat, old >= callback)
        return self

    def windows(self) -> Windows:
        return Windows(callback=self.callback_window, repeat=self.repeat_window, old=self.old_window)
