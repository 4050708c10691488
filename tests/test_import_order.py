"""Regression: after ``import wsal``, decord cannot break OpenCV's PNG writer (see wsal/__init__)."""

import subprocess
import sys

CODE = """
import wsal, decord, cv2, numpy as np, sys
img = (np.arange(8 * 8 * 3) % 251).astype(np.uint8).reshape(8, 8, 3)
cv2.imwrite(sys.argv[1], img)
back = cv2.imread(sys.argv[1])
assert back is not None and (back == img).all(), "PNG written by OpenCV does not read back"
"""


def test_png_round_trip_after_decord(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", CODE, str(tmp_path / "a.png")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
