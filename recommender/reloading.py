"""Hot index swaps: a serving process watches its index's manifest and swaps in a rebuilt index.

``recommender index`` replaces an index directory by renames, so a rebuilt index shows up as a
new manifest. Every ``interval`` seconds the watcher reads the manifest's bytes; when their
digest changes it loads the new index beside the one serving (requests go on using the old one
meanwhile), checked like any index (schema, checksums, rows, the model's checkpoint), and hands
it over in one reference assignment. A rebuild that does not load is refused in the log and the
old index keeps serving; that manifest is not tried again until it changes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from recommender.errors import RecommenderError
from recommender.index_manifest import MANIFEST
from recommender.track_index import TrackIndex

log = logging.getLogger(__name__)

Outcome = Literal["swapped", "refused"]


def manifest_digest(index: str | os.PathLike[str]) -> str | None:
    """sha256 of an index's manifest bytes, or None while there is none to read."""
    try:
        return hashlib.sha256((Path(index) / MANIFEST).read_bytes()).hexdigest()
    except OSError:
        return None


class IndexWatcher:
    """Swaps a rebuilt index in: ``load`` reads one, ``swap`` puts it (and its manifest's
    digest) into service."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        digest: str | None,
        load: Callable[[Path], TrackIndex],
        swap: Callable[[TrackIndex, str], None],
        interval: float,
        on_outcome: Callable[[Outcome, float, int | None], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.load = load
        self.swap = swap
        self.interval = interval
        self.on_outcome = on_outcome
        self.digest = digest  # the serving index's manifest, read before it was loaded
        self.refused: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> Outcome | None:
        """Swap in the index at ``path`` if its manifest changed and it loads."""
        digest = manifest_digest(self.path)
        if digest is None or digest in (self.digest, self.refused):
            return None
        started = time.perf_counter()
        try:
            index = self.load(self.path)
        except RecommenderError as error:
            self.refused = digest
            log.error(
                "the rebuilt index at %s was refused; the previous one serves: %s", self.path, error
            )
            self._report("refused", started, None)
            return "refused"
        self.digest = digest
        self.swap(index, digest)
        log.info(
            "swapped in the rebuilt index at %s (%d tracks) in %.2f s",
            self.path,
            len(index),
            time.perf_counter() - started,
        )
        self._report("swapped", started, len(index))
        return "swapped"

    def _report(self, outcome: Outcome, started: float, tracks: int | None) -> None:
        if self.on_outcome is not None:
            self.on_outcome(outcome, time.perf_counter() - started, tracks)

    def start(self) -> IndexWatcher:
        self._thread = threading.Thread(target=self._run, name="index-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # a watcher that dies silently would stop all future swaps
                log.exception("checking %s for a rebuilt index failed", self.path)
