"""Pure decision functions over snapshots of state, with `now` passed in. No I/O, no clock."""
