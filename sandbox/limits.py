"""Rate and concurrency limits, enforced the way the providers do.

``requests_per_minute`` is a true sliding window: the timestamps of accepted requests sit in a deque and a
request is admitted when fewer than ``limit`` of them fall in the last ``window`` seconds (the window is
``(now - window, now]``). Fixed per-minute buckets would let ``2 * limit`` requests through around a bucket
edge and hide client pacing bugs that a real provider punishes.

Only *accepted* requests enter the window: a request answered with 429 does not count, as providers count the
requests they serve. So a client hammering a closed window is not pushed further back, and ``retry-after`` is
exact: the moment the oldest blocking request leaves the window.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field

DAY_S = 86_400.0
TOKEN_WINDOW_S = 60.0


class SlidingWindow:
    """Timestamps of accepted requests, oldest first (monotonic clock, appended in order)."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def _prune(self, now: float, window: float) -> None:
        cutoff = now - window
        while self._times and self._times[0] <= cutoff:
            self._times.popleft()

    def count(self, now: float, window: float) -> int:
        """Number of accepted requests in ``(now - window, now]``."""
        self._prune(now, window)
        return len(self._times)

    def retry_after(self, now: float, limit: int, window: float) -> float | None:
        """``None`` when a request may be accepted now, else the seconds until one may.

        With ``n >= limit`` requests in the window, ``n - limit + 1`` of them must leave; the last of those is
        ``times[n - limit]`` (this also holds when the limit was lowered below the current count).
        """
        self._prune(now, window)
        n = len(self._times)
        if n < limit:
            return None
        return self._times[n - limit] + window - now

    def oldest(self) -> float | None:
        """Timestamp of the oldest request still stored (call :meth:`count` first to prune)."""
        return self._times[0] if self._times else None

    def add(self, now: float) -> None:
        self._times.append(now)

    def clear(self) -> None:
        self._times.clear()


class TokenWindow:
    """Tokens served in the last minute; only feeds GROQ-style ``x-ratelimit-*-tokens`` headers."""

    def __init__(self) -> None:
        self._entries: deque[tuple[float, int]] = deque()
        self._total = 0

    def add(self, now: float, tokens: int) -> None:
        self._entries.append((now, tokens))
        self._total += tokens

    def used(self, now: float) -> int:
        cutoff = now - TOKEN_WINDOW_S
        while self._entries and self._entries[0][0] <= cutoff:
            self._total -= self._entries.popleft()[1]
        return self._total

    def reset_in(self, now: float) -> float:
        """Seconds until the oldest counted tokens leave the window (0 when none are counted)."""
        self.used(now)
        return self._entries[0][0] + TOKEN_WINDOW_S - now if self._entries else 0.0

    def clear(self) -> None:
        self._entries.clear()
        self._total = 0


@dataclass
class ProviderLimiter:
    """Live limit state of one provider.

    ``in_flight`` reflects requests really being served, so :meth:`clear_windows` (used by the admin reset)
    keeps it: zeroing it while requests are in flight would let the counters go negative when they finish.
    """

    window: SlidingWindow = field(default_factory=SlidingWindow)
    day: SlidingWindow = field(default_factory=SlidingWindow)
    tokens: TokenWindow = field(default_factory=TokenWindow)
    in_flight: int = 0
    in_flight_by_endpoint: Counter[str] = field(default_factory=Counter)

    def enter(self, endpoint: str) -> None:
        self.in_flight += 1
        self.in_flight_by_endpoint[endpoint] += 1

    def leave(self, endpoint: str) -> None:
        self.in_flight -= 1
        self.in_flight_by_endpoint[endpoint] -= 1

    def clear_windows(self) -> None:
        self.window.clear()
        self.day.clear()
        self.tokens.clear()


def round_up_tenth(seconds: float) -> float:
    """Round a wait up to the next 0.1 s, never below 0.1 s: a client must not retry before the slot frees."""
    return max(0.1, math.ceil(seconds * 10 - 1e-9) / 10)


def format_retry_after(seconds: float) -> str:
    """``retry-after`` header value: seconds as a decimal number (providers send integers or fractions)."""
    return f"{round_up_tenth(seconds):.1f}"


def format_groq_duration(seconds: float) -> str:
    """GROQ's reset durations: ``2m59.56s``, ``7.66s``, ``1h2m3s``."""
    seconds = round(max(0.0, seconds), 2)  # round first: 59.999 must not print as "60s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = ""
    if hours >= 1:
        text += f"{int(hours)}h"
    if minutes >= 1 or hours >= 1:
        text += f"{int(minutes)}m"
    sec_text = f"{secs:.2f}".rstrip("0").rstrip(".")
    return f"{text}{sec_text}s"
