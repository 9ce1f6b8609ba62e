"""``python -m recommender.training``: the training command without the full CLI.

Every ``TrainOptions`` field is an option (``--pretrain-steps 0``, ``--preset tiny``, ...);
data paths default to $RECOMMENDER_DATA_DIR and $RECOMMENDER_DIARY_DIR.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import types
import typing
from dataclasses import fields
from pathlib import Path

from recommender.errors import RecommenderError
from recommender.training.options import TrainOptions
from recommender.training.train import train


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recommender.training", description=__doc__)
    hints = typing.get_type_hints(TrainOptions)
    for field in fields(TrainOptions):
        flag = "--" + field.name.replace("_", "-")
        hint = hints[field.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        base = args[0] if isinstance(hint, types.UnionType) and args else hint
        if base is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)
        elif typing.get_origin(base) is typing.Literal:
            parser.add_argument(flag, choices=typing.get_args(base), default=field.default)
        else:
            default = None if field.default is field.default_factory else field.default
            if not isinstance(default, (int, float, str, type(None))):
                default = None
            parser.add_argument(flag, type=base, default=default)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    namespace = vars(_parser().parse_args(argv))
    data_dir = namespace.pop("data_dir") or os.environ.get("RECOMMENDER_DATA_DIR")
    output_dir = namespace.pop("output_dir")
    diary_dir = namespace.pop("diary_dir") or os.environ.get("RECOMMENDER_DIARY_DIR")
    if not data_dir or not output_dir:
        print(
            "error: --data-dir (or RECOMMENDER_DATA_DIR) and --output-dir are required",
            file=sys.stderr,
        )
        return 2
    try:
        options = TrainOptions(
            data_dir=Path(data_dir),
            output_dir=Path(output_dir),
            diary_dir=Path(diary_dir) if diary_dir else None,
            **namespace,
        )
        print(train(options))
    except RecommenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
