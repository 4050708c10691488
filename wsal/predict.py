"""``python -m wsal.predict VIDEO [VIDEO ...] --out DIR``: run wsal on any video file.

A launcher only: the arguments are parsed first (:mod:`wsal.app.predict_cli`, so that ``--help``
and argument errors answer without importing torch), then the work is :mod:`wsal.app.predict`
(docs/predict.md).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from wsal.app.predict_cli import parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, then run; returns the exit status."""
    args = parser().parse_args(argv)
    from wsal.app.predict import run_args  # torch, Lightning: only once there is work

    return run_args(args)


if __name__ == "__main__":
    sys.exit(main())
