"""The services a route may use, as the composition root (runq.server) put them on the app.

Each route asks for the ones it needs; none gets the whole control plane.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import HTTPConnection

from runq.core.config import ServerConfig
from runq.fleet.deploys import Deployments
from runq.fleet.endpoints import Endpoints
from runq.fleet.fleet import Fleet
from runq.fleet.jobs import Jobs
from runq.fleet.lb import LoadBalancer
from runq.fleet.ledger import Ledger


def jobs(request: HTTPConnection) -> Jobs:
    found: Jobs = request.app.state.jobs
    return found


def fleet(request: HTTPConnection) -> Fleet:
    found: Fleet = request.app.state.fleet
    return found


def endpoints(request: HTTPConnection) -> Endpoints:
    found: Endpoints = request.app.state.endpoints
    return found


def deployments(request: HTTPConnection) -> Deployments:
    found: Deployments = request.app.state.deployments
    return found


def ledger(request: HTTPConnection) -> Ledger:
    found: Ledger = request.app.state.ledger
    return found


def balancer(request: HTTPConnection) -> LoadBalancer:
    found: LoadBalancer = request.app.state.balancer
    return found


def config(request: HTTPConnection) -> ServerConfig:
    found: ServerConfig = request.app.state.config
    return found


def clock(request: HTTPConnection) -> Callable[[], float]:
    found: Callable[[], float] = request.app.state.clock
    return found
