"""Slow twin of the ACT/MOC ``videoAP`` protocol: a literal, loop-based transcription.

Written for wsal's tests from the protocol's description (DESIGN §7), with the reference's data
layout: per video a dict ``{label: [(tube float32[n,5] with frame column, score), ...]}`` and GT
``{video: {label: [tube, ...]}}``. Used to check the vectorised evaluator number for number.
"""

from __future__ import annotations

import numpy as np


def area2d(b):
    return (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)


def overlap2d(b1, b2):
    xmin = np.maximum(b1[:, 0], b2[:, 0])
    ymin = np.maximum(b1[:, 1], b2[:, 1])
    xmax = np.minimum(b1[:, 2] + 1, b2[:, 2] + 1)
    ymax = np.minimum(b1[:, 3] + 1, b2[:, 3] + 1)
    return np.maximum(0, xmax - xmin) * np.maximum(0, ymax - ymin)


def iou2d(tubes, box):
    ov = overlap2d(tubes, box[None, :])
    return ov / (area2d(tubes) + area2d(box[None, :]) - ov)


def iou3d(b1, b2):
    assert b1.shape[0] == b2.shape[0]
    assert np.all(b1[:, 0] == b2[:, 0])
    ov = overlap2d(b1[:, 1:5], b2[:, 1:5])
    return np.mean(ov / (area2d(b1[:, 1:5]) + area2d(b2[:, 1:5]) - ov))


def iou3dt(b1, b2):
    tmin = max(b1[0, 0], b2[0, 0])
    tmax = min(b1[-1, 0], b2[-1, 0])
    if tmax < tmin:
        return 0.0
    temporal_inter = tmax - tmin + 1
    temporal_union = max(b1[-1, 0], b2[-1, 0]) - min(b1[0, 0], b2[0, 0]) + 1
    i1 = int(np.nonzero(b1[:, 0] == tmin)[0][0])
    j1 = int(np.nonzero(b1[:, 0] == tmax)[0][0])
    i2 = int(np.nonzero(b2[:, 0] == tmin)[0][0])
    j2 = int(np.nonzero(b2[:, 0] == tmax)[0][0])
    return iou3d(b1[i1 : j1 + 1], b2[i2 : j2 + 1]) * (temporal_inter / temporal_union)


def nms3dt(detections, overlap=0.5):
    if not detections:
        return np.array([], dtype=np.int32)
    order = np.argsort([d[1] for d in detections])
    indices = np.zeros(order.size, dtype=np.int32)
    counter = 0
    while order.size > 0:
        i = order[-1]
        indices[counter] = i
        counter += 1
        ious = np.array([iou3dt(detections[ii][0], detections[i][0]) for ii in order[:-1]])
        order = order[np.nonzero(ious <= overlap)[0]]
    return indices[:counter]


def pr_to_ap(pr):
    prdif = pr[1:, 1] - pr[:-1, 1]
    prsum = pr[1:, 0] + pr[:-1, 0]
    return np.sum(prdif * prsum * 0.5)


def video_ap(vlist, nlabels, dets, gttubes, th, nms=0.3):
    """dets: {video: {label: [(tube, score)]}}; gttubes: {video: {label: [tube]}}. AP per label."""
    alldets = {ilabel: [] for ilabel in range(nlabels)}
    for v in vlist:
        tubes = dets.get(v, {})
        for ilabel in range(nlabels):
            ltubes = tubes.get(ilabel, [])
            idx = nms3dt(ltubes, nms) if nms > 0 else range(len(ltubes))
            alldets[ilabel] += [(v, ltubes[i][1], ltubes[i][0]) for i in idx]
    res = []
    for ilabel in range(nlabels):
        detections = alldets[ilabel]
        gt = {}
        for v in vlist:
            tubes = gttubes.get(v, {})
            if ilabel not in tubes:
                continue
            gt[v] = list(tubes[ilabel])
            if len(gt[v]) == 0:
                del gt[v]
        pr = np.empty((len(detections) + 1, 2), dtype=np.float32)
        pr[0, 0] = 1.0
        pr[0, 1] = 0.0
        fn = sum(len(g) for g in gt.values())
        fp = 0
        tp = 0
        for i, j in enumerate(np.argsort(-np.array([dd[1] for dd in detections]))):
            v, score, tube = detections[j]
            ispositive = False
            if v in gt:
                ious = [iou3dt(g, tube) for g in gt[v]]
                amax = np.argmax(ious)
                if ious[amax] >= th:
                    ispositive = True
                    del gt[v][amax]
                    if len(gt[v]) == 0:
                        del gt[v]
            if ispositive:
                tp += 1
                fn -= 1
            else:
                fp += 1
            pr[i + 1, 0] = float(tp) / float(tp + fp)
            # the reference divides by zero here when a class has no GT; wsal's documented
            # departure is recall 0 (AP 0), which this twin mirrors so such cases stay comparable
            pr[i + 1, 1] = float(tp) / float(tp + fn) if tp + fn > 0 else 0.0
        res.append(float(pr_to_ap(pr)))
    return np.array(res)
