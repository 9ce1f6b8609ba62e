"""The Hugging Face hub as seen from a loader: its local cache, whether it answers, and the
message for a model that cannot be had."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

from recommender.errors import ModelLoadError


def in_cache(name: str) -> bool:
    """Whether hub model ``name`` is in the local cache (its config at least)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except ValueError:  # not a valid hub id
        return False


def reachable(timeout: float = 3.0) -> bool:
    """Whether the hub answers a TCP connect, so that an offline load fails at once."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    endpoint = urlsplit(constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname or "", port), timeout=timeout).close()
    except OSError:
        return False
    return True


def check_available(name: str) -> None:
    """Fail at once for a hub id that is neither cached nor reachable."""
    if not in_cache(name) and not reachable():
        raise load_error(name, None)


def load_error(name: str, error: Exception | None) -> ModelLoadError:
    """A model that could not be loaded: from a local path (with the cause) or from the hub
    (with how to fetch it on a machine with network access)."""
    if Path(name).exists():
        return ModelLoadError(f"cannot load model from {name!r}: {error}")
    reason = "the hub could not be reached" if error is None else "no such model on the hub"
    return ModelLoadError(
        f"model {name!r} is not a local directory and could not be fetched from the Hugging Face "
        f"hub ({reason}). On a machine with network access run "
        f"`hf download {name} --local-dir DIR` (`huggingface-cli download` on huggingface_hub "
        f"before 0.34), then pass --model DIR "
        f"(or set RECOMMENDER_MODEL=DIR)"
    )
