"""Batch indexing on Ray Data: the catalogue's files are read and classified in Ray workers.

The driver runs the same plan and the same index write as in-process indexing
(:mod:`recommender.indexing`); only the reading of the files and the classification of the
parts move to the cluster. Tasks read and check each file (the project's own reader, so the
checks are the same) and send back its tracks without lyrics; then Ray Data reads the lyrics of
each part to classify in ``map_batches`` tasks and classifies them in a pool of actors, each
loading the model once. Classified parts come back to the driver (24 bytes a track), which keeps
them in ``OUTPUT.work/`` as they complete, so an interrupted run resumes, also in-process.

Every node must see the catalogue's files at the same path (a shared or network filesystem).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from recommender.catalogue import catalogue_files, scan_shard
from recommender.emotions import EMOTIONS
from recommender.errors import InvalidInputError, RecommenderError
from recommender.indexing import (
    IndexOptions,
    IndexPlan,
    IndexSummary,
    finish_index,
    identity,
    index_writer,
    plan_index,
    progress_bar,
)
from recommender.track_index import ModelIdentity

log = logging.getLogger(__name__)

INSTALL = "indexing on Ray needs Ray: pip install 'recommender[ray]'"
ACTOR_CPUS = 1


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run: the cluster, its actors and their GPUs."""

    # A running cluster ("auto", "ray://host:10001", "host:6379"); None starts a local instance.
    address: str | None = None
    # Classifier actors (each holds one model); None: one per GPU share, else one per CPU.
    actors: int | None = None
    gpus_per_actor: float = 0.0
    # CPUs of a local instance (None: this machine's).
    local_cpus: int | None = None

    def __post_init__(self) -> None:
        if self.actors is not None and self.actors < 1:
            raise InvalidInputError(f"actors must be at least 1; got {self.actors}")
        if self.gpus_per_actor < 0:
            raise InvalidInputError(
                f"gpus_per_actor must not be negative; got {self.gpus_per_actor}"
            )

    @property
    def device(self) -> str | None:
        return "cuda" if self.gpus_per_actor > 0 else None


def import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise RecommenderError(INSTALL) from None
    return ray


def _identify(options: IndexOptions, device: str | None) -> ModelIdentity:
    return identity(options.load_classifier(device))


def _read_part(batch: dict[str, Any]) -> dict[str, Any]:
    """The lyrics of one part (``map_batches`` with one part a batch)."""
    from recommender.catalogue import read_lyrics

    (number,), (path,), (rows,), (hashes,) = (
        batch["part"],
        batch["path"],
        batch["rows"],
        batch["hashes"],
    )
    texts = read_lyrics(str(path), list(rows), list(hashes))
    return {
        "part": np.full(len(texts), number, dtype=np.int64),
        "pos": np.arange(len(texts), dtype=np.int64),
        "lyrics": np.asarray(texts, dtype=object),
    }


class _Classifier:
    """A Ray actor holding one model, loaded once through the project's loader."""

    def __init__(self, options: IndexOptions, device: str | None) -> None:
        # One intra-op thread: the actor holds one of Ray's CPUs (several would contend).
        self.model = options.load_classifier(device, threads=ACTOR_CPUS)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {
            "part": batch["part"],
            "pos": batch["pos"],
            "vector": self.model.predict_proba(batch["lyrics"].tolist()),
        }


def _user_error(error: BaseException) -> RecommenderError | None:
    """The library error a Ray task raised, from under Ray's wrappers."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, RecommenderError) and not type(seen).__module__.startswith("ray"):
            return seen
        cause = getattr(seen, "cause", None)
        seen = cause if isinstance(cause, BaseException) else seen.__cause__
    return None


def _actors(ray: Any, options: RayOptions) -> int:
    if options.actors is not None:
        return options.actors
    resources = ray.cluster_resources()
    if options.gpus_per_actor > 0:
        return max(1, int(resources.get("GPU", 0) / options.gpus_per_actor))
    return max(1, int(resources.get("CPU", 1)))


def _classify(ray: Any, plan: IndexPlan, options: IndexOptions, ray_options: RayOptions) -> None:
    """Classify the plan's parts on the cluster, keeping each part as it completes."""
    parts = list(plan.todo)
    items = [
        {"part": i, "path": p.path, "rows": list(p.rows), "hashes": list(p.hashes)}
        for i, p in enumerate(parts)
    ]
    actors = _actors(ray, ray_options)
    dataset = (
        ray.data.from_items(items, override_num_blocks=len(items))
        # Reading is light and mostly waits on files: it takes no CPU from the actors.
        .map_batches(_read_part, batch_size=1, batch_format="numpy", num_cpus=0)
        .map_batches(
            _Classifier,
            fn_constructor_kwargs={"options": options, "device": ray_options.device},
            batch_size=options.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=ACTOR_CPUS,
            num_gpus=ray_options.gpus_per_actor,
        )
    )
    log.info("classifying %d parts on %d actors", len(parts), actors)
    vectors = {i: np.empty((len(p), len(EMOTIONS)), np.float32) for i, p in enumerate(parts)}
    filled = dict.fromkeys(vectors, 0)
    with progress_bar(plan, options) as bar:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for number in np.unique(batch["part"]):
                rows = batch["part"] == number
                vectors[int(number)][batch["pos"][rows]] = batch["vector"][rows]
                filled[int(number)] += int(rows.sum())
                if filled[int(number)] == len(parts[int(number)]):
                    plan.complete(parts[int(number)], vectors.pop(int(number)))
            bar.update(len(batch["part"]))


def build_index_on_ray(
    catalogue: str | os.PathLike[str],
    output: str | os.PathLike[str],
    options: IndexOptions | None = None,
    ray_options: RayOptions | None = None,
) -> IndexSummary:
    """Index a catalogue on Ray; the index is the one :func:`~recommender.indexing.build_index`
    writes, and either resumes the other's interrupted run."""
    ray = import_ray()
    options = options or IndexOptions()
    ray_options = ray_options or RayOptions()
    files = catalogue_files(catalogue)
    with index_writer(output):  # before Ray starts: a second writer fails at once
        return _build_on_ray(ray, catalogue, files, output, options, ray_options)


def _build_on_ray(
    ray: Any,
    catalogue: str | os.PathLike[str],
    files: list[Any],
    output: str | os.PathLike[str],
    options: IndexOptions,
    ray_options: RayOptions,
) -> IndexSummary:
    started = not ray.is_initialized()
    if started:
        ray.init(
            address=ray_options.address,
            num_cpus=ray_options.local_cpus if ray_options.address is None else None,
            include_dashboard=False,
            logging_level=logging.ERROR,
            log_to_driver=False,
        )
    try:
        # Ray Data logs each execution's start and end; the command shows its own progress.
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        resources = ray.cluster_resources()
        log.info("Ray ready: %g CPUs, %g GPUs", resources.get("CPU", 0), resources.get("GPU", 0))
        scan = ray.remote(num_cpus=1)(scan_shard)
        shards = ray.get([scan.remote(str(path), i) for i, path in enumerate(files)])
        identify = ray.remote(num_cpus=1, num_gpus=ray_options.gpus_per_actor)(_identify)
        model = ray.get(identify.remote(options, ray_options.device))
        plan = plan_index(catalogue, shards, output, model, options)
        if plan.todo:
            _classify(ray, plan, options, ray_options)
        return finish_index(plan, options)
    except Exception as error:
        user = _user_error(error)
        if user is None or user is error:
            raise
        raise user from None
    finally:
        if started:
            ray.shutdown()
