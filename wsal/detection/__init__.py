"""Detection: per-frame actor boxes for a dataset's videos (DESIGN §2, docs/detectors.md).

- :mod:`wsal.detection.backends`: the detector backends the configs name
  (``conf/detector/*.yaml``): a stored detections file, any torchvision model, OpenCV's HOG;
- :mod:`wsal.detection.model`: torchvision detection models by name, weights, class filtering;
- :mod:`wsal.detection.predict`: the sharded, resumable Lightning predict whose per-video shards
  merge into one detections store;
- :mod:`wsal.detection.hog`: OpenCV's HOG people detector (no download);
- ``python -m wsal.detection``: run a torchvision detector over a dataset.

Nothing is imported here: ``backends`` and ``hog`` load without torch, ``model`` and ``predict``
need torch and Lightning.
"""
