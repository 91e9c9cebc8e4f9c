"""Workers: their registry, local processes, and the loop that keeps jobs and workers honest."""
