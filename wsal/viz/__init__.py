"""Qualitative pictures and evaluation plots (:mod:`wsal.viz.draw`) and their command line
(``python -m wsal.viz``, :mod:`wsal.viz.__main__`). Nothing here reads a config."""

from wsal.viz.draw import (
    GT_COLOR,
    PRED_COLOR,
    TubeList,
    draw_boxes,
    plot_bars,
    plot_cost,
    plot_map_vs_iou,
    plot_pr,
    plot_pr_curves,
    plot_recall,
    read_video_frames,
    save_strips,
    save_tube_video,
    save_video_animation,
    tube_strip,
    video_strip,
    video_tubes,
)

__all__ = [
    "GT_COLOR",
    "PRED_COLOR",
    "TubeList",
    "draw_boxes",
    "tube_strip",
    "save_strips",
    "video_tubes",
    "read_video_frames",
    "video_strip",
    "save_video_animation",
    "save_tube_video",
    "plot_recall",
    "plot_pr",
    "plot_pr_curves",
    "plot_map_vs_iou",
    "plot_bars",
    "plot_cost",
]
