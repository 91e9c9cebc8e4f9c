"""Pure decision functions over snapshots of state, with `now` passed in. No I/O, no clock."""

from runq.policy.scaling import recommend_active_workers

__all__ = ["recommend_active_workers"]
