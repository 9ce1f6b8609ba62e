"""Command line: a thin click shell over the library. Errors are one line and exit code 1."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from recommender.emotions import EMOTIONS
from recommender.errors import InvalidInputError, RecommenderError
from recommender.indexing import PART_SIZE

if TYPE_CHECKING:
    from recommender.ranking import TrackInfo
    from recommender.sentences import Arc
    from recommender.service import Recommender
    from recommender.settings import Backend, Settings


class SettingOption(click.Option):
    """An option backed by a setting: ``--help`` shows its environment variable, which the
    settings object reads (the one reader of ``RECOMMENDER_*``); a value given here wins."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["show_envvar"] = True
        super().__init__(*args, **kwargs)

    def resolve_envvar_value(self, ctx: click.Context) -> str | None:
        return None


def setting_option(*decls: str, setting: str, **kwargs: Any) -> Any:
    return click.option(
        *decls, cls=SettingOption, envvar=f"RECOMMENDER_{setting.upper()}", **kwargs
    )


def _settings(**overrides: Any) -> Settings:
    """The settings read when the command started, with the options given on the command line."""
    from recommender.settings import Settings

    settings = click.get_current_context().find_object(Settings)
    return (settings or Settings.from_env()).replace(**overrides)


DEVICE = setting_option(
    "--device",
    setting="device",
    default=None,
    help="cpu, cuda or cuda:N (default: CUDA if present).",
)
MODEL = setting_option(
    "--model",
    "model",
    setting="model",
    default=None,
    metavar="M",
    help="Checkpoint or ONNX export directory, or hub id (default: the bundled model).",
)
INDEX = setting_option(
    "--index",
    "index",
    setting="index",
    default=None,
    metavar="INDEX_DIR",
    type=click.Path(file_okay=False),
    help="Index directory (default: the sample catalogue's index).",
)
AS_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
DETAIL = click.option(
    "--detail",
    default=None,
    type=click.Choice(["sentences"]),
    help="Also read each sentence (dominant ones marked *).",
)
PER_ARTIST = click.option(
    "--per-artist", default=2, show_default=True, type=click.IntRange(1, 100), help="Artist cap."
)
GENRE = click.option("--genre", default=None, help="Only tracks of this genre.")
ENGINE = setting_option(
    "--engine",
    setting="engine",
    default=None,
    type=click.Choice(["torch", "onnx"]),
    help="Backend (default: onnx for an ONNX export directory and for the bundled model on a "
    "CPU, else torch).",
)


class Group(click.Group):
    """Turns user-fixable errors into one line on stderr and exit code 1.

    These are the library's errors and the operating system's (a path that cannot be
    written, a full disk), which name the file involved.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (RecommenderError, OSError) as error:
            # Messages can quote multi-line text from transformers or pandas: keep one line.
            click.echo(f"Error: {' '.join(str(error).split())}", err=True)
            ctx.exit(1)


@click.group(cls=Group)
@click.version_option(package_name="recommender")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """Emotion-based music recommendation for Korean text."""
    from recommender.settings import Settings

    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = Settings.from_env()


def _bar(probabilities: dict[str, float]) -> str:
    return "  ".join(f"{e} {probabilities[e]:.2f}" for e in EMOTIONS)


def _top(probabilities: dict[str, float]) -> str:
    return max(probabilities, key=probabilities.__getitem__)


def _print_arc(arc: Arc) -> None:
    for i, sentence in enumerate(arc.sentences):
        mark = "*" if i in arc.dominant else " "
        click.echo(
            f"  {mark} {_top(sentence.emotions):<12} share {sentence.share:.2f}  {sentence.text}"
        )


@main.command()
@click.argument("texts", nargs=-1, required=True)
@MODEL
@ENGINE
@DEVICE
@DETAIL
@AS_JSON
def classify(
    texts: tuple[str, ...],
    model: str | None,
    engine: Backend | None,
    device: str | None,
    detail: str | None,
    as_json: bool,
) -> None:
    """Print the emotion vector of each TEXT."""
    from recommender.classifier import EmotionClassifier
    from recommender.emotions import as_mapping
    from recommender.schemas import TextReading, to_json
    from recommender.schemas import emotions as to_emotions
    from recommender.sentences import read_arcs

    settings = _settings(model=model, engine=engine, device=device)
    classifier = EmotionClassifier.from_pretrained(settings=settings)
    if detail == "sentences":
        arcs = read_arcs(classifier, list(texts))
        readings = [arc.reading for arc in arcs]
    else:
        readings = list(classifier.predict_proba(list(texts)))
    for i, (text, row) in enumerate(zip(texts, readings, strict=True)):
        emotions = as_mapping(row)
        if as_json:
            arc = arcs[i] if detail == "sentences" else None
            reading = TextReading(
                text=text,
                emotions=to_emotions(emotions),
                sentences=arc.sentence_bodies() if arc else None,
                dominant=arc.dominant if arc else None,
            )
            click.echo(to_json(reading))
            continue
        click.echo(f"{_top(emotions):<12} {_bar(emotions)}  {text}")
        if detail == "sentences":
            _print_arc(arcs[i])


@main.command()
@click.argument("catalogue")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Index dir.")
@MODEL
@ENGINE
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1, 4096))
@click.option(
    "--index-type",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "flat", "ivf", "hnsw"]),
    help="Search structure: auto is exact (flat) below 20,000 tracks and IVF above.",
)
@click.option(
    "--tag-weight",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="Blend the catalogue's own mood tags into the lyrics' reading (0 ignores them).",
)
@click.option(
    "--tag-column",
    default=None,
    help="The column of mood labels (default: six mood_* probability columns, else 'mood').",
)
@DEVICE
@click.option(
    "--fresh",
    is_flag=True,
    help="Discard the vectors an interrupted run kept in OUTPUT.work/ instead of resuming. "
    "Unchanged tracks still reuse their vectors from the index already in OUTPUT; delete "
    "OUTPUT to classify everything again.",
)
@click.option(
    "--part-size",
    default=PART_SIZE,
    show_default=True,
    type=click.IntRange(1),
    help="Lyrics per part: the unit of work kept for resuming.",
)
@click.option("--ray", "on_ray", is_flag=True, help="Classify on Ray Data (recommender[ray]).")
@click.option(
    "--ray-address",
    default=None,
    metavar="ADDR",
    help="Ray cluster to attach to (default: a local instance for this command).",
)
@click.option(
    "--actors",
    default=None,
    type=click.IntRange(1),
    help="Classifier actors on Ray (default: one per CPU, or per GPU share).",
)
@click.option(
    "--gpus-per-actor",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0),
    help="GPUs each Ray actor holds; above 0 the actors classify on CUDA.",
)
@AS_JSON
def index(
    catalogue: str,
    output: str,
    model: str | None,
    engine: Backend | None,
    batch_size: int,
    index_type: str,
    tag_weight: float,
    tag_column: str | None,
    device: str | None,
    fresh: bool,
    part_size: int,
    on_ray: bool,
    ray_address: str | None,
    actors: int | None,
    gpus_per_actor: float,
    as_json: bool,
) -> None:
    """Classify a catalogue's lyrics into an index directory.

    CATALOGUE is a CSV, TSV, Parquet or JSONL file, a directory of them, or a quoted glob
    ('shards/*.parquet'). An interrupted run resumes where it stopped.
    """
    from recommender.indexing import IndexOptions, build_index

    if not on_ray and (ray_address or actors or gpus_per_actor):
        raise InvalidInputError("--ray-address, --actors and --gpus-per-actor need --ray")
    options = IndexOptions(
        model=model,
        engine=engine,
        device=device,
        batch_size=batch_size,
        index_type=index_type,  # type: ignore[arg-type]
        fresh=fresh,
        progress=not as_json,
        part_size=part_size,
        tag_weight=tag_weight,
        tag_column=tag_column,
    )
    if on_ray:
        from recommender.distributed import RayOptions, build_index_on_ray

        ray_options = RayOptions(ray_address, actors, gpus_per_actor)
        summary = build_index_on_ray(catalogue, output, options, ray_options)
    else:
        summary = build_index(catalogue, output, options=options)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), ensure_ascii=False))
        return
    resumed = f", {summary.resumed} resumed from an interrupted run" if summary.resumed else ""
    click.echo(
        f"Indexed {summary.tracks} tracks into {output} ({summary.classified} classified, "
        f"{summary.reused} reused from the previous index{resumed})"
    )
    if summary.skipped:
        shown = ", ".join(f"{s['track_id']} ({s['reason']})" for s in summary.skipped[:10])
        more = f" and {len(summary.skipped) - 10} more" if len(summary.skipped) > 10 else ""
        click.echo(f"Skipped {len(summary.skipped)} without lyrics: {shown}{more}")


@main.command()
@click.argument("text")
@INDEX
@MODEL
@click.option("-k", default=10, show_default=True, type=click.IntRange(1, 100))
@click.option(
    "--target",
    default=None,
    type=click.Choice(EMOTIONS),
    help="Shift the mood towards this emotion.",
)
@GENRE
@click.option(
    "--focus",
    default="whole",
    show_default=True,
    type=click.Choice(["whole", "end"]),
    help="Read the whole text, or weigh its last sentences most.",
)
@DETAIL
@ENGINE
@DEVICE
@AS_JSON
def recommend(
    text: str,
    index: str | None,
    model: str | None,
    k: int,
    target: str | None,
    genre: str | None,
    focus: str,
    detail: str | None,
    engine: Backend | None,
    device: str | None,
    as_json: bool,
) -> None:
    """Recommend K tracks for TEXT."""
    from recommender.schemas import to_json

    service = _service(model, index, device, engine)
    filters = {"genre": genre} if genre else None
    result = service.recommend(
        text,
        k,
        target=target,
        filters=filters,
        focus=focus,
        detail=detail,
    )
    if as_json:
        click.echo(to_json(result.to_body()))
        return
    click.echo(f"You: {_bar(result.emotions)}")
    if result.arc is not None:
        _print_arc(result.arc)
    _print_tracks(result.tracks)


def _service(
    model: str | None, index: str | None, device: str | None, engine: Backend | None
) -> Recommender:
    """The model and index the options (else the settings) name."""
    from recommender.service import Recommender

    return Recommender.load(
        settings=_settings(model=model, index=index, device=device, engine=engine)
    )


def _print_tracks(tracks: list[Any]) -> None:
    for rank, track in enumerate(tracks, 1):
        click.echo(f"{rank:>3}. {track.score:.3f}  {_track(track)}")


def _track(track: TrackInfo) -> str:
    return f"{track.title} — {track.artist} [{track.track_id}]"


@main.command()
@click.argument("text")
@INDEX
@MODEL
@click.option(
    "-n",
    default=12,
    show_default=True,
    type=click.IntRange(3, 50),
    help="Number of tracks (steps).",
)
@click.option(
    "--target",
    default=None,
    type=click.Choice(EMOTIONS),
    help="The mood to end at (default: lift towards happy; a happy mood stays).",
)
@GENRE
@PER_ARTIST
@ENGINE
@DEVICE
@AS_JSON
def playlist(
    text: str,
    index: str | None,
    model: str | None,
    n: int,
    target: str | None,
    genre: str | None,
    per_artist: int,
    engine: Backend | None,
    device: str | None,
    as_json: bool,
) -> None:
    """A playlist of N tracks from TEXT's mood, step by step, to the target mood."""
    from recommender.schemas import to_json

    service = _service(model, index, device, engine)
    filters = {"genre": genre} if genre else None
    result = service.playlist(text, n, target=target, filters=filters, per_artist=per_artist)
    if as_json:
        click.echo(to_json(result.to_body()))
        return
    click.echo(f"You: {_bar(result.emotions)}")
    click.echo(f"To:  {_bar(result.end)}  ({result.mode}: {result.target})")
    for step in result.tracks:
        goal = _top(step.goal)
        click.echo(
            f"{step.step:>3}. goal {goal:<12} distance {step.distance:.3f}  {_track(step.track)}"
        )


@main.command()
@click.argument("track_id")
@INDEX
@MODEL
@click.option("-k", default=10, show_default=True, type=click.IntRange(1, 100))
@GENRE
@PER_ARTIST
@ENGINE
@DEVICE
@AS_JSON
def similar(
    track_id: str,
    index: str | None,
    model: str | None,
    k: int,
    genre: str | None,
    per_artist: int,
    engine: Backend | None,
    device: str | None,
    as_json: bool,
) -> None:
    """K tracks whose emotions are nearest TRACK_ID's."""
    from recommender.schemas import to_json

    service = _service(model, index, device, engine)
    result = service.similar(track_id, k, genre=genre, per_artist=per_artist)
    if as_json:
        click.echo(to_json(result.to_body()))
        return
    click.echo(f"{_track(result.track)}: {_bar(result.track.emotions)}")
    _print_tracks(result.tracks)


@main.command()
@INDEX
@MODEL
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@setting_option(
    "--compute-slots",
    setting="compute_slots",
    default=None,
    type=click.IntRange(1, 64),
    help="Requests computing at once in each worker; others wait their turn, and /health, "
    "/ready and /metrics never wait (default: 1).",
)
@ENGINE
@DEVICE
def serve(
    index: str | None,
    model: str | None,
    host: str,
    port: int,
    workers: int,
    compute_slots: int | None,
    engine: Backend | None,
    device: str | None,
) -> None:
    """Serve the HTTP API under gunicorn (each worker loads the model after fork).

    The model and index are loaded once first, in a child process: one that cannot be used
    stops the command with its error."""
    from recommender.server import serve as run_server
    from recommender.service import SAMPLE_CATALOGUE, SAMPLE_INDEX, default_index

    settings = _settings(
        model=model, index=index, device=device, engine=engine, compute_slots=compute_slots
    )
    target = Path(default_index(settings))
    if not target.exists() and target == SAMPLE_INDEX and SAMPLE_CATALOGUE.exists():
        # First start without a shipped sample index: build it in a child process, so that the
        # gunicorn master never holds a model.
        click.echo(f"Building the sample index at {target} ...", err=True)
        command = [
            sys.executable,
            "-m",
            "recommender",
            "index",
            str(SAMPLE_CATALOGUE),
            "-o",
            str(target),
        ]
        if settings.model:
            command += ["--model", settings.model]
        if settings.engine:
            command += ["--engine", settings.engine]
        if subprocess.run(command, check=False).returncode:
            raise click.ClickException("building the sample index failed")
    settings = settings.replace(index=str(target))
    run_server(settings, host=host, port=port, workers=workers)


def _tuning_options(command: Any) -> Any:
    """Every further TrainOptions field as an option; unset ones take the preset's value."""
    import types
    import typing
    from dataclasses import MISSING, fields

    from recommender.training.options import TrainOptions

    hints = typing.get_type_hints(TrainOptions)
    explicit = {"data_dir", "output_dir", "diary_dir", "seed", "device", "preset"}
    for field in reversed(fields(TrainOptions)):
        if field.name in explicit:
            continue
        hint = hints[field.name]
        kinds = [a for a in typing.get_args(hint) if a is not type(None)]
        kind = kinds[0] if isinstance(hint, types.UnionType) else hint
        flag = "--" + field.name.replace("_", "-")
        default = None if field.default is MISSING else field.default
        if kind is bool:
            decl = f"{flag}/--no-{flag[2:]}"
            command = click.option(decl, default=default, show_default=True)(command)
        elif kind is Path:
            command = click.option(flag, type=click.Path(path_type=Path), default=default)(command)
        else:
            command = click.option(flag, type=kind, default=default, show_default=True)(command)
    return command


@main.command()
@setting_option(
    "--data-dir",
    setting="data_dir",
    default=None,
    type=click.Path(file_okay=False, exists=True),
    help="The shared data folder (emotion/, corpus/); required.",
)
@setting_option(
    "--diary-dir",
    setting="diary_dir",
    default=None,
    type=click.Path(file_okay=False, exists=True),
    help="Team diary set folder with train.tsv.",
)
@click.option(
    "-o", "--output-dir", "--output", "output_dir", required=True, type=click.Path(file_okay=False)
)
@click.option("--preset", default="small", show_default=True, type=click.Choice(["tiny", "small"]))
@click.option("--seed", default=13, show_default=True, type=int)
@DEVICE
@_tuning_options
def train(
    data_dir: str | None,
    diary_dir: str | None,
    output_dir: str,
    preset: str,
    seed: int,
    device: str | None,
    **tuning: Any,
) -> None:
    """Train an emotion model from the openly licensed data into OUTPUT_DIR.

    Options left unset take the preset's value; see the model card for the bundled run.
    """
    from recommender.training import TrainOptions
    from recommender.training.train import train as run_training

    settings = _settings(data_dir=data_dir, diary_dir=diary_dir, device=device)
    if settings.data_dir is None:
        raise click.UsageError("Missing option '--data-dir' (or RECOMMENDER_DATA_DIR).")
    options = TrainOptions(
        data_dir=settings.data_dir,
        diary_dir=settings.diary_dir,
        output_dir=Path(output_dir),
        seed=seed,
        device=settings.device,
        preset=preset,  # type: ignore[arg-type]
        **tuning,
    )
    click.echo(f"Model saved to {run_training(options)}")


@main.command()
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--text-column", default="text", show_default=True)
@click.option("--label-column", default="label", show_default=True)
@MODEL
@ENGINE
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1, 4096))
@DEVICE
@AS_JSON
def evaluate(
    data: str,
    text_column: str,
    label_column: str,
    model: str | None,
    engine: Backend | None,
    batch_size: int,
    device: str | None,
    as_json: bool,
) -> None:
    """Score a model on a labelled CSV/TSV: accuracy, macro-F1, per class, confusion matrix."""
    from recommender.classifier import EmotionClassifier
    from recommender.evaluation import evaluate as run_evaluation
    from recommender.evaluation import load_labelled

    settings = _settings(model=model, engine=engine, device=device)
    labelled = load_labelled(data, text_column=text_column, label_column=label_column)
    classifier = EmotionClassifier.from_pretrained(settings=settings, batch_size=batch_size)
    report = run_evaluation(classifier, labelled, batch_size=batch_size)
    click.echo(json.dumps(report.to_dict(), ensure_ascii=False) if as_json else report.format())


@main.command("holdout-filter")
@click.argument("source", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--held-out",
    "held_out",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A held-out file (TSV/CSV with a text column, JSONL with text or lyrics); repeatable.",
)
@click.option("--threshold", default=0.45, show_default=True, type=click.FloatRange(0, 1))
def holdout_filter(
    source: Path, output: Path, held_out: tuple[Path, ...], threshold: float
) -> None:
    """Copy the training file SOURCE to OUTPUT without its rows near any held-out text
    (character 2-4-gram TF-IDF cosine above the threshold, also stanza by stanza)."""
    from recommender.training.heldout import filter_file

    result = filter_file(source, output, list(held_out), threshold)
    click.echo(
        f"{source}: kept {int(result.keep.sum())} of {len(result.keep)} rows "
        f"({result.removed} within cosine {threshold} of a held-out text) -> {output}"
    )


@main.command("export-onnx")
@click.argument("checkpoint", type=click.Path(file_okay=False, exists=True))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Export dir.")
@click.option("--int8", is_flag=True, help="Quantize the weights to int8 (dynamic quantization).")
@click.option(
    "--fuse/--no-fuse",
    default=True,
    show_default=True,
    help="Fuse attention, layer-norm and GELU ops (BERT-like encoders such as ELECTRA).",
)
def export_onnx(checkpoint: str, output: str, int8: bool, fuse: bool) -> None:
    """Export a CHECKPOINT directory to ONNX for the onnx engine (`--engine onnx`)."""
    from recommender.onnx_export import export_onnx as run_export

    run_export(checkpoint, output, quantize=int8, fuse=fuse)
    click.echo(f"Exported {checkpoint} ({'int8' if int8 else 'fp32'}) to {output}")


if __name__ == "__main__":  # pragma: no cover
    main(prog_name=os.path.basename(sys.argv[0]))
