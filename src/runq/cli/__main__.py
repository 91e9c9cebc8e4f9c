"""`python -m runq.cli ...`, as the tests and benchmarks start `runq serve`."""

from runq.cli.app import app

app()
