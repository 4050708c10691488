"""wsal: weakly-supervised spatio-temporal action localization."""

# OpenCV must be loaded before decord: decord's bundled zlib otherwise takes over the symbols that
# OpenCV's libpng resolves, and every PNG OpenCV writes afterwards is corrupt ("libpng error: bad
# parameters to zlib", while cv2.imwrite still returns True). Importing wsal first is enough.
import cv2 as _cv2  # noqa: F401  (import order matters, see above)

__version__ = "0.1.0"
