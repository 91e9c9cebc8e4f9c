"""Hypothesis explores new examples on every local run; CI replays a fixed set, so that a red
CI always means a regression (and a new find shows up locally, not as a flaky CI)."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
