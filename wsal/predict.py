"""``python -m wsal.predict VIDEO [VIDEO ...] --out DIR``: run wsal on any video file.

A launcher only: the work is :mod:`wsal.app.predict` (docs/predict.md).
"""

import sys

from wsal.app.predict import main

if __name__ == "__main__":
    sys.exit(main())
