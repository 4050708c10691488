"""Shared test set-up. ``import wsal`` first: it loads OpenCV before any test module loads decord
(see wsal/__init__.py for why the order matters)."""

import wsal  # noqa: F401
