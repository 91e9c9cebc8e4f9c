"""Back-off schedules for the poll loops and result posts (pure, no clock)."""

from __future__ import annotations

POLL_FIRST_S = 0.2
POLL_MAX_S = 2.0
THROTTLED_S = 5.0  # a 429 on a poll
FAST_EMPTY_S = 0.05  # a 204 quicker than this was not held as a long poll
FAST_EMPTIES_BEFORE_BACKOFF = 5

POST_ATTEMPTS = 10
POST_FIRST_S = 0.2
POST_MAX_S = 5.0


class PollBackoff:
    """Delays between long polls of job-take or job-stop.

    Errors back off 0.2, 0.4, 0.8, 1.6, 2, 2 ... s. A 204 is normally re-polled at once
    because the server held it; but five 204s in a row that each came back in under 50 ms
    mean the server is not holding (e.g. it is draining this worker), and re-polling at once
    would spin at ~1000 requests/s, so those back off like errors.
    """

    def __init__(self) -> None:
        self._delay = 0.0
        self._fast_empties = 0

    def success(self) -> float:
        """A reply with work in it: poll again at once."""
        self._delay = 0.0
        self._fast_empties = 0
        return 0.0

    def empty(self, elapsed: float) -> float:
        """A 204 after `elapsed` seconds."""
        if elapsed >= FAST_EMPTY_S:
            return self.success()
        self._fast_empties += 1
        if self._fast_empties < FAST_EMPTIES_BEFORE_BACKOFF:
            return 0.0
        return self.error()

    def error(self) -> float:
        """A failed poll (connection refused, 5xx ...)."""
        self._delay = POLL_FIRST_S if self._delay == 0 else min(self._delay * 2, POLL_MAX_S)
        return self._delay

    def throttled(self) -> float:
        """A 429."""
        self._delay = 0.0
        return THROTTLED_S


def post_delays() -> list[float]:
    """Sleeps between the attempts of one result post.

    Example: 0.2, 0.4, 0.8, 1.6, 3.2, 5, 5, 5, 5 -> 9 sleeps, 10 attempts, 26.2 s in all,
    enough to ride out a control-plane restart.
    """
    delays = []
    delay = POST_FIRST_S
    for _ in range(POST_ATTEMPTS - 1):
        delays.append(delay)
        delay = min(delay * 2, POST_MAX_S)
    return delays
