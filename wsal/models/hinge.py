"""Full-batch linear max-margin solver: many one-vs-rest SVMs in one batched optimisation.

STIL's M-step (Eq. 1 with the latent variables fixed) is "a standard l2-regularised max-margin
problem" (STIL §3.1, citing LIBLINEAR). This module solves it for all L classes at once, on the
device of ``X``, with the data held in memory (box features: 50k-500k x 512 fit on one GPU).

**Objective** (per column l of ``Y``; that of scikit-learn's ``LinearSVC`` / LIBLINEAR with
``intercept_scaling=1``, i.e. the bias is a weight on a constant feature 1 and regularised)::

    f_l(w, b) = 0.5 * ||w||^2 + 0.5 * b^2 + C * sum_{i : Y[i,l] != 0} loss(Y[i,l] * (<w, x_i> + b))

    loss(m) = max(0, 1 - m)^2     "squared_hinge" (L2-loss SVM, LinearSVC's default)
    loss(m) = max(0, 1 - m)       "hinge"         (L1-loss SVM, the loss written in STIL Eq. 1)

With per-example weights ``weight[i, l] >= 0`` the loss term of example i in column l is
multiplied by ``weight[i, l]`` (LinearSVC's ``class_weight`` / ``sample_weight``: the example's
C becomes ``C * weight[i, l]``).

``Y[i, l] = 0`` leaves example i out of column l, so one call can also train models on different
subsets of the rows (STIL's fold models, :mod:`wsal.models.stil`). With ``bias=False`` the bias is
fixed at 0 and its term vanishes.

**Algorithm: batched truncated Newton (the "finite Newton" method for L2-SVMs).** The squared hinge
is piecewise quadratic and once differentiable, so each class's objective has gradient
``g = w - 2C X^T (y * r)`` (r = max(0, 1 - y z), z = Xw + b) and a generalised Hessian
``H = I + 2C X_A^T X_A`` over the active rows A (r > 0). Each iteration solves ``H d = -g``
approximately by conjugate gradients (one ``X v`` and one ``X^T u`` product per CG step, batched
over the classes still running, restricted to the rows active in some class), then takes the
exact minimiser along ``d`` (the 1-D objective is convex piecewise quadratic in the step t; a
bracketed Newton iteration on its derivative finds it from the cached ``z = Xw + b`` and
``dz = X d``, O(N L) per trial, no further matrix products). Columns stop independently when
``0.5 ||g_l||^2 <= tol * f_l``: f is 1-strongly convex (its ``0.5 ||(w, b)||^2`` term), so
``f - f* <= ||g||^2 / 2`` and the objective is then within a factor ``1 + tol`` of the optimum;
or when an iteration no longer decreases f (round-off level: float32 may stop there first).

The **hinge** is not differentiable; it is solved through its Huber smoothing
``loss_h(m) = (1-m)^2 / (2h)`` for ``1-h < m < 1``, ``1 - m - h/2`` for ``m <= 1-h``, 0 above,
with the same Newton iteration and a continuation ``h = 0.5, 0.1, 0.02, 0.005, 0.001`` (each stage
warm-started from the last). ``0 <= hinge - loss_h <= h/2``, so the final objective exceeds the
true optimum by at most ``C * h/2`` per margin violator (1e-3 relative for typical data).

Agreement with LinearSVC and speed: see ``tests/test_hinge.py``, ``bench/bench_stil_solver.py``
and ``docs/stil.md``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["LOSSES", "fit_linear_hinge", "hinge_objective"]

LOSSES = ("squared_hinge", "hinge")
# Huber widths of the hinge continuation (see the module docstring).
_HINGE_SMOOTHING = (0.5, 0.1, 0.02, 0.005, 0.001)


def _check_weight(weight: Tensor | None, Y: Tensor) -> Tensor | None:
    """``weight`` as float[N, L] (an [N] vector applies to every column), or None."""
    if weight is None:
        return None
    if weight.ndim == 1 and weight.shape[0] == Y.shape[0]:
        weight = weight[:, None].expand(Y.shape)
    if tuple(weight.shape) != tuple(Y.shape):
        raise ValueError(
            f"weight must be [N] or [N, L] = {tuple(Y.shape)}, got shape {tuple(weight.shape)}"
        )
    if not (torch.isfinite(weight).all() and (weight >= 0).all()):
        raise ValueError("weight must be finite and >= 0")
    return weight


def _check(X: Tensor, Y: Tensor, C: float, loss: str) -> None:
    if X.ndim != 2:
        raise ValueError(f"X must be [N, D], got shape {tuple(X.shape)}")
    if Y.ndim != 2 or Y.shape[0] != X.shape[0]:
        raise ValueError(f"Y must be [N, L] with N = {X.shape[0]}, got shape {tuple(Y.shape)}")
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {LOSSES}")
    if not C > 0:
        raise ValueError(f"C must be > 0, got {C}")
    if not torch.isfinite(X).all():
        raise ValueError("X has NaN or infinite values")
    if not ((Y == 1) | (Y == -1) | (Y == 0)).all():
        raise ValueError("Y must hold only +1 (positive), -1 (negative) and 0 (not used)")


def hinge_objective(
    X: Tensor,
    Y: Tensor,
    W: Tensor,
    b: Tensor | None,
    C: float = 10.0,
    loss: str = "squared_hinge",
    weight: Tensor | None = None,
) -> Tensor:
    """Primal objective of each column: ``float64[L]`` (see the module docstring for the formula).

    Args:
        X: float[N, D] examples; Y: [N, L] in {+1, -1, 0} (0 = row not used by that column);
        W: float[L, D]; b: float[L] or None (no bias); C > 0; loss: "squared_hinge" | "hinge";
        weight: optional float[N, L] or [N] per-example loss weights (>= 0).
    """
    _check(X, Y, C, loss)
    wt = _check_weight(weight, Y)
    W = W.to(X.dtype)
    z = X @ W.T  # [N, L]
    reg = 0.5 * (W.double() ** 2).sum(dim=1)  # [L]
    if b is not None:
        b = b.to(X.dtype)
        z = z + b
        reg = reg + 0.5 * b.double() ** 2
    y = Y.to(X.dtype)
    r = (1.0 - y * z).clamp_min(0.0) * (y != 0)  # [N, L] margin violation, 0 on unused rows
    per = r.double() ** 2 if loss == "squared_hinge" else r.double()
    if wt is not None:
        per = per * wt.to(device=per.device, dtype=torch.float64)
    return reg + C * per.sum(dim=0)


class _Loss:
    """Per-example loss of the margin violation ``r = max(0, 1 - y z)``: value, -d/dm, d2/dm2.

    ``h = None`` is the squared hinge ``r^2``; ``h > 0`` the Huber hinge of width h.
    """

    def __init__(self, h: float | None) -> None:
        self.h = h

    def value(self, r: Tensor) -> Tensor:
        if self.h is None:
            return r * r
        return torch.where(r < self.h, r * r / (2 * self.h), r - self.h / 2)

    def slope(self, r: Tensor) -> Tensor:
        """-d loss / d m (>= 0): the weight of each example in the gradient."""
        if self.h is None:
            return 2.0 * r
        return (r / self.h).clamp_max(1.0)

    def curvature(self, r: Tensor) -> Tensor:
        """d2 loss / d m2 (generalised: 0 at the kinks)."""
        if self.h is None:
            return 2.0 * (r > 0).to(r.dtype)
        return ((r > 0) & (r < self.h)).to(r.dtype) / self.h


def fit_linear_hinge(
    X: Tensor,
    Y: Tensor,
    C: float = 10.0,
    loss: str = "squared_hinge",
    bias: bool = True,
    max_iter: int = 100,
    tol: float = 1e-6,
    W0: Tensor | None = None,
    b0: Tensor | None = None,
    max_cg: int = 100,
    info: dict[str, Any] | None = None,
    weight: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Solve L linear SVMs (one per column of ``Y``) together; returns ``(W [L, D], b [L])``.

    Args:
        X: float[N, D] examples (float32 or float64; the solver runs in X's dtype, on X's device).
        Y: [N, L] labels per column: +1 positive, -1 negative, 0 = row not used by that column.
        C: loss weight (STIL: 10). loss: "squared_hinge" (default) or "hinge".
        bias: learn a (regularised) bias; if False b is 0.
        max_iter: most Newton iterations (per smoothing stage for the hinge).
        tol: bound on each column's relative suboptimality ``(f - f*) / f`` (see the module doc).
        W0, b0: optional warm start ([L, D], [L]), e.g. the previous EM epoch's models.
        max_cg: most conjugate-gradient steps per Newton iteration.
        info: if a dict is given, it receives ``iterations`` (Newton iterations run),
            ``cg_steps``, ``converged`` (bool[L]) and ``objective`` (float64[L]).
        weight: optional per-example loss weights, float[N, L] (or [N] for every column), >= 0:
            example i counts with ``C * weight[i, l]`` in column l (e.g. class balancing).

    A column with no used rows gets w = 0, b = 0. See the module docstring for the objective.
    """
    _check(X, Y, C, loss)
    wt = _check_weight(weight, Y)
    N, D = X.shape
    L = Y.shape[1]
    dtype, dev = X.dtype, X.device
    y = Y.to(device=dev, dtype=dtype)  # [N, L]
    used = y != 0  # [N, L]
    # Per-example C: a plain float without weights (the unweighted path is unchanged).
    Cw: float | Tensor = C if wt is None else C * wt.to(device=dev, dtype=dtype)
    W = torch.zeros(L, D, dtype=dtype, device=dev) if W0 is None else W0.to(dev, dtype).clone()
    b = torch.zeros(L, dtype=dtype, device=dev) if b0 is None or not bias else b0.to(dev, dtype)
    b = b.clone()
    if W.shape != (L, D) or b.shape != (L,):
        raise ValueError(
            f"W0/b0 must be [{L}, {D}] and [{L}], got {tuple(W.shape)}, {tuple(b.shape)}"
        )
    stats = {"iterations": 0, "cg_steps": 0}
    converged = torch.zeros(L, dtype=torch.bool, device=dev)
    stages: tuple[float | None, ...] = (None,) if loss == "squared_hinge" else _HINGE_SMOOTHING
    for i, h in enumerate(stages):
        # Intermediate smoothing stages only provide a warm start: a loose tolerance suffices.
        tol_h = tol if i == len(stages) - 1 else max(tol, 1e-3)
        W, b, converged = _newton(
            X, y, used, W, b, Cw, _Loss(h), bias, max_iter, tol_h, max_cg, stats
        )
    if info is not None:
        info.update(stats)
        info["converged"] = converged.cpu()
        info["objective"] = hinge_objective(X, Y, W, b if bias else None, C, loss, wt).cpu()
    return W, b


def _newton(
    X: Tensor,
    y: Tensor,
    used: Tensor,
    W: Tensor,
    b: Tensor,
    C: float | Tensor,
    lf: _Loss,
    bias: bool,
    max_iter: int,
    tol: float,
    max_cg: int,
    stats: dict[str, int],
) -> tuple[Tensor, Tensor, Tensor]:
    """Truncated Newton with exact line search, all columns batched (see the module docstring).

    Each iteration works on the columns still running only (the last few often need many more
    iterations than the rest). ``C`` is a float or a per-example float[N, L] (weights).
    """
    L = y.shape[1]
    fb = 1.0 if bias else 0.0  # multiplies every bias update, so b stays 0 without a bias
    done = torch.zeros(L, dtype=torch.bool, device=X.device)
    f_prev = torch.full((L,), float("inf"), dtype=torch.float64, device=X.device)
    for _ in range(max_iter):
        cols = torch.nonzero(~done).squeeze(1)  # [L_A] columns still running
        if len(cols) == 0:
            break
        if len(cols) == L:
            Wa, ba, ya, ua, Ca = W, b, y, used, C
        else:
            Wa, ba, ya, ua = W[cols], b[cols], y[:, cols], used[:, cols]  # [L_A, D] ... [N, L_A]
            Ca = C[:, cols] if isinstance(C, torch.Tensor) else C
        z = X @ Wa.T + ba  # [N, L_A]
        r = (1.0 - ya * z).clamp_min(0.0) * ua  # [N, L_A] margin violations
        f = 0.5 * ((Wa * Wa).sum(dim=1, dtype=torch.float64) + ba.double() ** 2)
        f = f + (Ca * lf.value(r)).sum(dim=0, dtype=torch.float64)  # [L_A]
        # No decrease at all = converged at round-off level (the exact line search cannot
        # increase f: only rounding can).
        stop = f >= f_prev[cols]
        coef = Ca * lf.slope(r) * ya  # [N, L_A] -C d loss / d z
        gW = Wa - coef.T @ X  # [L_A, D]
        gb = (ba - coef.sum(dim=0)) * fb  # [L_A]
        gnorm = torch.sqrt((gW * gW).sum(dim=1) + gb * gb)  # [L_A]
        # f is 1-strongly convex (the 0.5 ||(w, b)||^2 term), so f - f* <= ||g||^2 / 2: this
        # bounds the relative suboptimality of each column by tol.
        stop |= 0.5 * gnorm.double() ** 2 <= tol * f
        done[cols] = stop
        f_prev[cols] = f
        if bool(stop.all()):
            break
        stats["iterations"] += 1
        curv = Ca * lf.curvature(r) * ua  # [N, L_A] generalised Hessian weights (C included)
        dW, db, steps = _cg(X, curv, gW, gb, ~stop, fb, gnorm, max_cg)
        stats["cg_steps"] += steps
        dz = X @ dW.T + db  # [N, L_A]
        t = _line_search(z, dz, ya, ua, Wa, ba, dW, db, Ca, lf, ~stop)  # [L_A]
        W[cols] = Wa + t[:, None] * dW
        b[cols] = ba + t * db
    return W, b, done


def _cg(
    X: Tensor,
    curv: Tensor,
    gW: Tensor,
    gb: Tensor,
    active: Tensor,
    fb: float,
    gnorm: Tensor,
    max_cg: int,
) -> tuple[Tensor, Tensor, int]:
    """Approximately solve ``H d = -g`` per active column by conjugate gradients.

    ``H v = v + X^T (curv * (X v_w + v_b))`` (and the bias row; ``curv`` includes C). Only rows with curvature in
    some column take part in the products (at the optimum of a separable-ish problem, few do).
    Each column stops when its residual is below ``0.1 * ||g||`` (truncated Newton, as TRON).
    """
    rows = torch.nonzero(curv.any(dim=1)).squeeze(1)  # [N_A]
    XA, cA = X[rows], curv[rows]  # [N_A, D], [N_A, L]
    cols = torch.nonzero(active).squeeze(1)  # [L_A] columns still running
    cA = cA[:, cols]  # [N_A, L_A]
    dW = torch.zeros_like(gW)
    db = torch.zeros_like(gb)
    rW, rb = -gW[cols], -gb[cols]  # [L_A, D], [L_A] residual of H d = -g at d = 0
    pW, pb = rW.clone(), rb.clone()
    rz = (rW * rW).sum(dim=1) + rb * rb  # [L_A] squared residual norm
    goal = (0.1 * gnorm[cols]) ** 2
    stop = rz <= goal
    xW, xb = torch.zeros_like(rW), torch.zeros_like(rb)
    tiny = torch.finfo(X.dtype).tiny
    steps = 0
    for _ in range(max_cg):
        if bool(stop.all()):
            break
        steps += 1
        u = cA * (XA @ pW.T + pb)  # [N_A, L_A]
        HpW = pW + u.T @ XA  # [L_A, D]
        Hpb = (pb + u.sum(dim=0)) * fb  # [L_A]
        pHp = ((pW * HpW).sum(dim=1) + pb * Hpb).clamp_min(tiny)  # [L_A]
        alpha = torch.where(stop, torch.zeros_like(rz), rz / pHp)  # [L_A]
        xW = xW + alpha[:, None] * pW
        xb = xb + alpha * pb
        rW = rW - alpha[:, None] * HpW
        rb = rb - alpha * Hpb
        rz_new = (rW * rW).sum(dim=1) + rb * rb
        stop = stop | (rz_new <= goal)
        beta = torch.where(stop, torch.zeros_like(rz), rz_new / rz.clamp_min(tiny))
        pW = rW + beta[:, None] * pW
        pb = rb + beta * pb
        rz = torch.where(stop, rz, rz_new)
    dW[cols] = xW
    db[cols] = xb * fb
    return dW, db, steps


def _line_search(
    z: Tensor,
    dz: Tensor,
    y: Tensor,
    used: Tensor,
    W: Tensor,
    b: Tensor,
    dW: Tensor,
    db: Tensor,
    C: float | Tensor,
    lf: _Loss,
    active: Tensor,
    iters: int = 30,
) -> Tensor:
    """Exact step per column: the root of ``phi'(t)`` for ``phi(t) = f(W + t dW, b + t db)``.

    ``phi`` is convex and C^1 with ``phi'' >= ||d||^2 > 0``, so Newton steps on ``phi'`` kept
    inside the bracket ``[lo, hi]`` (``phi'(lo) < 0 < phi'(hi)``, bisection otherwise) converge;
    for the piecewise quadratic ``phi`` they end exactly once the active set settles. Evaluates
    from the cached ``z`` and ``dz``: O(N L) per trial.
    """
    f64 = torch.float64
    wd = (W * dW).sum(dim=1, dtype=f64) + (b * db).double()  # [L] <w, d>
    dd = (dW * dW).sum(dim=1, dtype=f64) + (db * db).double()  # [L] ||d||^2
    ydz = y * dz  # [N, L] (X's dtype; the sums below accumulate in float64)
    ym = y * z  # [N, L] margins at t = 0
    L = z.shape[1]
    # Relative step below which t is final: float32 margins cannot resolve t much finer.
    rtol = 1e3 * torch.finfo(z.dtype).eps
    t = torch.ones(L, dtype=f64, device=z.device)  # the Newton step
    lo = torch.zeros_like(t)
    hi = torch.full_like(t, float("inf"))
    run = active.clone() & (dd > 0)
    for _ in range(iters):
        if not bool(run.any()):
            break
        r = (1.0 - ym - t.to(z.dtype) * ydz).clamp_min(0.0) * used  # [N, L]
        d1 = wd + t * dd - (C * lf.slope(r) * ydz).sum(dim=0, dtype=f64)  # [L] phi'(t)
        d2 = dd + (C * lf.curvature(r) * ydz * ydz).sum(dim=0, dtype=f64)  # [L] phi''(t)
        pos = d1 > 0
        hi = torch.where(run & pos, t, hi)
        lo = torch.where(run & ~pos, t, lo)
        step = d1 / d2
        # Converged at t (phi' ~ 0, or a Newton step below resolution): keep t. Tested before
        # the bracket check, which would otherwise reject a step onto lo == t.
        small = (d1.abs() <= 1e-12 * (wd.abs() + dd * t.abs()) + 1e-300) | (
            step.abs() <= rtol * t.abs()
        )
        tn = t - step
        bad = ~((tn > lo) & (tn < hi))  # outside the open bracket (or NaN): bisect / expand
        mid = torch.where(torch.isinf(hi), 2 * t, (lo + hi) / 2)
        tn = torch.where(bad, mid, tn)
        t = torch.where(run & ~small, tn, t)
        run = run & ~small
    t = torch.where(active & (dd > 0), t, torch.zeros_like(t))
    return t.to(z.dtype)
