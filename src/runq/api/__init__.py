"""HTTP: the RunPod-compatible client API, the worker protocol, and the admin API."""
