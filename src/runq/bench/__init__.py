"""Load generation, trace replay, the simulator and the advisor (issue 5)."""
