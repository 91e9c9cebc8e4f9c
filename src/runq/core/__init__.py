"""Domain types: endpoint specs, jobs, workers. Standard library only."""
