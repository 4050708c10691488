"""Benchmark STIL's M-step solver (``wsal.models.hinge.fit_linear_hinge``) against LinearSVC.

    .venv/bin/python bench/bench_stil_solver.py [--n 200000 --d 512 --classes 1 7 --loss squared_hinge]
    .venv/bin/python bench/bench_stil_solver.py --quick        # 50k x 512, L = 1 and 7
    .venv/bin/python bench/bench_stil_solver.py --threads 1    # on a shared, loaded CPU

Data: ``n`` examples of dimension ``d``, L2-normalised like STIL's box features; for L classes
each class is two Gaussian clusters (means drawn at random, unit-norm directions plus noise of
the same total size), one-vs-rest labels (L = 1: class 0 against the rest of a 2-class draw).
Both solvers minimise the same objective (``hinge_objective``: 0.5||w||^2 + 0.5 b^2 + C sum loss,
the bias regularised as LinearSVC's ``intercept_scaling=1``). Prints, per L: wall time and
objective of ``fit_linear_hinge`` (float32, every device available: CPU, and CUDA when present)
and of scikit-learn's ``LinearSVC`` (``dual="auto"``, ``tol`` from ``--sk-tol``, default its
default 1e-4; one-vs-rest; float64), and the relative objective gap. No assertions: figures only. Say the machine load when quoting.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from wsal.models.hinge import fit_linear_hinge, hinge_objective


def make_data(n: int, d: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(X float32[n, d] unit rows, Y int8[n, L] in {+1, -1})."""
    rng = np.random.default_rng(seed)
    k = max(classes, 2)
    means = rng.normal(size=(k, 2, d)) / np.sqrt(d)  # [k, 2, d] two clusters per class
    lab = rng.integers(0, k, n)  # [n]
    mode = rng.integers(0, 2, n)
    X = means[lab, mode] + rng.normal(size=(n, d)).astype(np.float32) / np.sqrt(d)  # [n, d]
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Y = np.where(lab[:, None] == np.arange(classes)[None, :], 1, -1).astype(np.int8)  # [n, L]
    return X.astype(np.float32), Y


def run_ours(
    X: np.ndarray, Y: np.ndarray, C: float, loss: str, device: str
) -> tuple[float, np.ndarray]:
    Xt = torch.from_numpy(X).to(device)
    Yt = torch.from_numpy(Y).to(device)
    fit_linear_hinge(Xt[:1000], Yt[:1000], C, loss)  # warm-up (kernels, allocator)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    info: dict = {}
    t = time.perf_counter()
    W, b = fit_linear_hinge(Xt, Yt, C, loss, info=info)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t
    obj = hinge_objective(Xt.double(), Yt, W.double(), b.double(), C, loss).cpu().numpy()
    print(
        f"  ours   {device:5s} {dt:8.2f} s  newton={info['iterations']} cg={info['cg_steps']}  "
        f"objective={np.array2string(obj, precision=2, max_line_width=200)}"
    )
    return dt, obj


def run_sklearn(
    X: np.ndarray, Y: np.ndarray, C: float, loss: str, tol: float
) -> tuple[float, np.ndarray]:
    from sklearn.svm import LinearSVC

    X64 = X.astype(np.float64)
    L = Y.shape[1]
    t = time.perf_counter()
    Ws, bs = [], []
    for c in range(L):  # one-vs-rest, exactly the columns of Y
        m = LinearSVC(
            C=C,
            loss=loss,
            dual=True if loss == "hinge" else "auto",
            tol=tol,
            max_iter=10000,
            intercept_scaling=1.0,
        ).fit(X64, Y[:, c])
        Ws.append(m.coef_[0])
        bs.append(m.intercept_[0])
    dt = time.perf_counter() - t
    W, b = torch.tensor(np.array(Ws)), torch.tensor(np.array(bs))
    obj = hinge_objective(torch.from_numpy(X64), torch.from_numpy(Y), W, b, C, loss).numpy()
    print(
        f"  sklearn tol={tol:.0e} {dt:8.2f} s  "
        f"objective={np.array2string(obj, precision=2, max_line_width=200)}"
    )
    return dt, obj


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--classes", type=int, nargs="+", default=[1, 7])
    ap.add_argument("--C", type=float, default=10.0)
    ap.add_argument("--loss", default="squared_hinge", choices=["squared_hinge", "hinge"])
    ap.add_argument("--quick", action="store_true", help="50k examples instead of --n")
    ap.add_argument("--no-sklearn", action="store_true")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's); on a loaded machine 1 avoids OpenMP stalls",
    )
    ap.add_argument(
        "--sk-tol", type=float, nargs="+", default=[1e-4, 1e-6], help="LinearSVC tolerances to run"
    )
    args = ap.parse_args()
    n = 50_000 if args.quick else args.n
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(
        f"n={n} d={args.d} C={args.C} loss={args.loss} torch threads={torch.get_num_threads()} "
        f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f}"
    )
    for L in args.classes:
        X, Y = make_data(n, args.d, L)
        print(f"L={L}  positives per class: {(Y == 1).sum(0).tolist()}")
        ours = {dev: run_ours(X, Y, args.C, args.loss, dev) for dev in devices}
        for tol in [] if args.no_sklearn else args.sk_tol:
            dt_sk, obj_sk = run_sklearn(X, Y, args.C, args.loss, tol)
            for dev, (dt, obj) in ours.items():
                gap = (obj - obj_sk) / obj_sk
                print(
                    f"    {dev}: speed-up x{dt_sk / dt:.1f}, objective gap (ours - sk) / sk: "
                    f"max {gap.max():+.2e} min {gap.min():+.2e}"
                )


if __name__ == "__main__":
    main()
