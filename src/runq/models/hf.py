"""Hugging Face repos, fetched with huggingface_hub into the host cache's `hub/` folder, which
is then laid out exactly as HF_HUB_CACHE: a worker's transformers or diffusers finds the files
there itself, offline."""

from __future__ import annotations

import os
from pathlib import Path

from runq.models.errors import FetchFailed


def snapshot(repo_id: str, revision: str, hub_dir: Path) -> Path:
    """Downloads (or finds) a repo snapshot; returns its folder, `.../snapshots/<commit>`.

    huggingface_hub writes each file as `<blob>.incomplete` and renames it when whole, so a
    crash leaves no file that looks complete. The hub is HF_ENDPOINT (a mirror, or a test's
    fake hub) when that is set.

    Raises:
        FetchFailed: the hub could not be reached, or has no such repo or revision.
    """
    # Imported here: it is heavy, and only a pull of an hf:// source needs it.
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(
            repo_id,
            revision=revision or None,
            cache_dir=hub_dir,
            endpoint=os.environ.get("HF_ENDPOINT") or None,
        )
    except Exception as exc:  # huggingface_hub raises many kinds; the caller needs one
        raise FetchFailed(f"hf://{repo_id}: {type(exc).__name__}: {exc}") from None
    return Path(str(path))


def tree_size(folder: Path) -> int:
    """Bytes of the files under `folder`, following the snapshot's links to its blobs."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
