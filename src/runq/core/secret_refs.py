"""RunPod-style secret references in an endpoint's env: `"{{ RUNPOD_SECRET_NAME }}"`.

The endpoint file, the store, the admin API and the dashboard only ever hold the reference;
the value is put in when a worker starts, into that worker's environment alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_REFERENCE = re.compile(r"\{\{\s*RUNPOD_SECRET_([A-Za-z0-9_.-]+)\s*\}\}")


class SecretMissing(Exception):
    """An endpoint refers to a secret that is not set."""


def references(env: Mapping[str, str]) -> set[str]:
    """The secret names `env` refers to.

    >>> sorted(references({"TOKEN": "{{ RUNPOD_SECRET_hf_token }}", "X": "plain"}))
    ['hf_token']
    """
    return {name for value in env.values() for name in _REFERENCE.findall(value)}


def resolve(env: Mapping[str, str], lookup: Callable[[str], str | None]) -> dict[str, str]:
    """`env` with every reference replaced by its secret's value.

    >>> resolve({"URL": "https://u:{{ RUNPOD_SECRET_pw }}@db"}, {"pw": "s3"}.get)
    {'URL': 'https://u:s3@db'}

    Raises:
        SecretMissing: naming the first secret that is not set.
    """

    def value(match: re.Match[str]) -> str:
        secret = lookup(match.group(1))
        if secret is None:
            raise SecretMissing(
                f"secret '{match.group(1)}' is not set (runq secrets set {match.group(1)})"
            )
        return secret

    return {key: _REFERENCE.sub(value, text) for key, text in env.items()}
