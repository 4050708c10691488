"""The batched max-margin solver (STIL's M-step) against scikit-learn's LinearSVC and by hand."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from wsal.models.hinge import fit_linear_hinge, hinge_objective

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def blobs(n: int = 2000, d: int = 32, classes: int = 3, sep: float = 3.0, seed: int = 0):
    """(X float64[n, d], Y int[n, L] one-vs-rest +-1): one Gaussian per class; ``sep`` scales
    the distance between class means (3: nearly separable, 0.5: heavily overlapping)."""
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, classes, n)
    means = rng.normal(size=(classes, d)) * sep / np.sqrt(d)
    X = rng.normal(size=(n, d)) + means[lab]
    Y = np.where(lab[:, None] == np.arange(classes)[None, :], 1, -1)
    return X, Y


def sklearn_objective(X, Y, C, loss, fit_intercept=True):
    """LinearSVC (LIBLINEAR) per column, scored with our objective."""
    from sklearn.svm import LinearSVC

    Ws, bs = [], []
    for c in range(Y.shape[1]):
        keep = Y[:, c] != 0
        m = LinearSVC(
            C=C,
            loss=loss,
            dual=loss == "hinge",  # the primal (TRON) solver is faster here; hinge needs dual
            tol=1e-6,
            max_iter=200_000,
            intercept_scaling=1.0,
            fit_intercept=fit_intercept,
        ).fit(X[keep], Y[keep, c])
        Ws.append(m.coef_[0])
        bs.append(m.intercept_[0] if fit_intercept else 0.0)
    W, b = torch.tensor(np.array(Ws)), torch.tensor(np.array(bs))
    return hinge_objective(torch.tensor(X), torch.tensor(Y), W, b, C, loss)


def naive_objective(X, Y, W, b, C, loss):
    """Loop twin of hinge_objective."""
    out = []
    for c in range(Y.shape[1]):
        f = 0.5 * float(np.dot(W[c], W[c])) + 0.5 * float(b[c]) ** 2
        for i in range(X.shape[0]):
            if Y[i, c] == 0:
                continue
            r = max(0.0, 1.0 - Y[i, c] * (float(np.dot(W[c], X[i])) + float(b[c])))
            f += C * (r * r if loss == "squared_hinge" else r)
        out.append(f)
    return np.array(out)


@pytest.mark.parametrize("loss", ["squared_hinge", "hinge"])
def test_objective_matches_loop_twin(loss):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 5))
    Y = rng.choice([-1, 0, 1], size=(40, 3))
    W = rng.normal(size=(3, 5))
    b = rng.normal(size=3)
    got = hinge_objective(
        torch.tensor(X), torch.tensor(Y), torch.tensor(W), torch.tensor(b), 3.0, loss
    )
    np.testing.assert_allclose(got.numpy(), naive_objective(X, Y, W, b, 3.0, loss), rtol=1e-12)


@functools.cache
def reference(sep: float, loss: str) -> torch.Tensor:
    X, Y = blobs(n=N_FOR[loss], sep=sep)
    return sklearn_objective(X, Y, 10.0, loss)


N_FOR = {"squared_hinge": 2000, "hinge": 1000}  # the hinge's continuation is the slower path
CASES = [
    (loss, sep, dtype)
    for loss in ("squared_hinge", "hinge")
    for sep in (3.0, 0.5)
    for dtype in (torch.float64, torch.float32)
    if dtype == torch.float64 or loss == "squared_hinge"  # float32 hinge: slow, same code path
]


# LIBLINEAR's dual solver may stop at max_iter on the overlapping hinge case; it is still the
# lower objective of the two there (ours is within ~1e-4 above it).
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    ("loss", "sep", "dtype"), CASES, ids=[f"{c[0]}-sep{c[1]}-{c[2]}" for c in CASES]
)
def test_matches_linearsvc_objective(loss, sep, dtype):
    """N x 32, 3 classes: the objective of LinearSVC (tol 1e-6) within 1% (the hinge's
    smoothing leaves ~1e-4; squared hinge: within 1e-5)."""
    X, Y = blobs(n=N_FOR[loss], sep=sep)
    ref = reference(sep, loss)
    W, b = fit_linear_hinge(torch.tensor(X, dtype=dtype), torch.tensor(Y), 10.0, loss)
    ours = hinge_objective(torch.tensor(X), torch.tensor(Y), W.double(), b.double(), 10.0, loss)
    gap = ((ours - ref) / ref).abs()
    assert (gap < (1e-5 if loss == "squared_hinge" else 1e-2)).all(), (ours, ref)


def test_no_bias_matches_linearsvc_without_intercept():
    X, Y = blobs(n=800, d=16, sep=1.0)
    X = X + 2.0  # an offset a model without bias cannot absorb
    ref = sklearn_objective(X, Y, 1.0, "squared_hinge", fit_intercept=False)
    W, b = fit_linear_hinge(torch.tensor(X), torch.tensor(Y), 1.0, bias=False)
    assert (b == 0).all()
    ours = hinge_objective(torch.tensor(X), torch.tensor(Y), W, None, 1.0)
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-6)


def test_stationary_point():
    """Squared hinge: the gradient w - 2C X^T(y r) (and its bias part) vanishes at the solution."""
    X, Y = blobs(n=500, d=8, sep=1.0)
    Xt, Yt = torch.tensor(X), torch.tensor(Y, dtype=torch.float64)
    W, b = fit_linear_hinge(Xt, Yt, 10.0, tol=0.0)  # until f stops decreasing
    r = (1 - Yt * (Xt @ W.T + b)).clamp_min(0)  # [N, L]
    lossW = 2 * 10.0 * (Yt * r).T @ Xt  # [L, D] the loss part of the gradient (= W at the optimum)
    lossb = 2 * 10.0 * (Yt * r).sum(0)
    # f (~2e3) is known to ~1e-13 relative, so decreases below ~1e-12 are invisible: that bounds
    # the attainable gradient near sqrt(1e-12 * 2e3) ~ 1e-5 relative to the weights (~0.1-0.5).
    assert (W - lossW).abs().max() < 1e-5 and (b - lossb).abs().max() < 1e-5
    assert W.abs().max() > 0.1


def test_zero_labels_leave_rows_out_and_columns_are_independent():
    """A column with 0 entries = the same problem on its used rows alone; batching changes
    nothing; a column with no rows gives w = 0, b = 0."""
    X, Y = blobs(n=600, d=10, sep=1.5)
    rng = np.random.default_rng(3)
    Y = Y * (rng.random(Y.shape) < 0.7)  # drop ~30% of the rows from each column
    Y[:, 2] = 0
    Xt = torch.tensor(X)
    W, b = fit_linear_hinge(Xt, torch.tensor(Y), 10.0, tol=1e-12)
    for c in range(2):
        keep = Y[:, c] != 0
        Wc, bc = fit_linear_hinge(Xt[keep], torch.tensor(Y[keep, c : c + 1]), 10.0, tol=1e-12)
        np.testing.assert_allclose(W[c].numpy(), Wc[0].numpy(), atol=1e-6)
        np.testing.assert_allclose(float(b[c]), float(bc[0]), atol=1e-6)
    assert (W[2] == 0).all() and b[2] == 0


def test_warm_start_from_the_solution_stops_at_once():
    X, Y = blobs(n=600, d=10)
    Xt, Yt = torch.tensor(X), torch.tensor(Y)
    W, b = fit_linear_hinge(Xt, Yt, 10.0)
    info: dict = {}
    W2, b2 = fit_linear_hinge(Xt, Yt, 10.0, W0=W, b0=b, info=info)
    assert info["iterations"] <= 1 and bool(info["converged"].all())
    np.testing.assert_allclose(
        info["objective"].numpy(), hinge_objective(Xt, Yt, W, b, 10.0).numpy(), rtol=1e-9
    )


def test_hand_case_one_dimension():
    """x = +1 (y = +1), x = -1 (y = -1), C = 1, no bias: f(w) = 0.5 w^2 + 2 (1 - w)^2 is minimal
    at w = 0.8 (squared hinge); with the hinge f = 0.5 w^2 + 2 (1 - w) is minimal at w = 1."""
    X = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
    Y = torch.tensor([[1], [-1]])
    W, _ = fit_linear_hinge(X, Y, 1.0, bias=False, tol=1e-14)
    assert float(W[0, 0]) == pytest.approx(0.8, abs=1e-10)
    W, _ = fit_linear_hinge(X, Y, 1.0, "hinge", bias=False, tol=1e-14)
    assert float(W[0, 0]) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("device", DEVICES)
def test_device_and_dtype_follow_X(device):
    X, Y = blobs(n=200, d=4)
    W, b = fit_linear_hinge(
        torch.tensor(X, dtype=torch.float32, device=device), torch.tensor(Y, device=device)
    )
    assert (
        W.device.type == device
        and W.dtype == torch.float32
        and W.shape == (3, 4)
        and b.shape == (3,)
    )


def test_errors():
    X = torch.zeros(4, 2)
    Y = torch.ones(4, 1)
    with pytest.raises(ValueError, match="only \\+1"):
        fit_linear_hinge(X, Y * 2)
    with pytest.raises(ValueError, match="NaN"):
        fit_linear_hinge(torch.full((4, 2), float("nan")), Y)
    with pytest.raises(ValueError, match="Y must be"):
        fit_linear_hinge(X, torch.ones(3, 1))
    with pytest.raises(ValueError, match="unknown loss"):
        fit_linear_hinge(X, Y, loss="logistic")
    with pytest.raises(ValueError, match="C must be"):
        fit_linear_hinge(X, Y, C=0.0)
    with pytest.raises(ValueError, match="W0/b0"):
        fit_linear_hinge(X, Y, W0=torch.zeros(2, 2))


def balanced_reference(X, Y, C, loss):
    """LinearSVC(class_weight="balanced") per column (n / (2 n_class) per class), scored with
    our weighted objective; also returns the [N, L] weights it implies."""
    from sklearn.svm import LinearSVC

    Ws, bs = [], []
    wt = np.zeros(Y.shape)
    for c in range(Y.shape[1]):
        y = Y[:, c]
        n, n_pos, n_neg = len(y), (y == 1).sum(), (y == -1).sum()
        wt[:, c] = np.where(y == 1, n / (2 * n_pos), n / (2 * n_neg))
        m = LinearSVC(
            C=C,
            loss=loss,
            dual=loss == "hinge",
            tol=1e-6,
            max_iter=200_000,
            intercept_scaling=1.0,
            class_weight="balanced",
        ).fit(X, y)
        Ws.append(m.coef_[0])
        bs.append(m.intercept_[0])
    W, b = torch.tensor(np.array(Ws)), torch.tensor(np.array(bs))
    wt = torch.tensor(wt)
    return hinge_objective(torch.tensor(X), torch.tensor(Y), W, b, C, loss, wt), wt


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("loss", ["squared_hinge", "hinge"])
def test_weights_match_linearsvc_class_weight_balanced(loss):
    """Imbalanced one-vs-rest (5 classes: ~20% positives per column): per-example weights
    reproduce LinearSVC(class_weight="balanced")'s objective (squared hinge 1e-5, hinge 1%)."""
    X, Y = blobs(n=800, d=16, classes=5, sep=1.0, seed=4)
    ref, wt = balanced_reference(X, Y, 10.0, loss)
    W, b = fit_linear_hinge(torch.tensor(X), torch.tensor(Y), 10.0, loss, weight=wt)
    ours = hinge_objective(torch.tensor(X), torch.tensor(Y), W, b, 10.0, loss, wt)
    gap = ((ours - ref) / ref).abs()
    assert (gap < (1e-5 if loss == "squared_hinge" else 1e-2)).all(), (ours, ref)
    # and the weights matter: the unweighted optimum is a worse point of the weighted objective
    W0, b0 = fit_linear_hinge(torch.tensor(X), torch.tensor(Y), 10.0, loss)
    worse = hinge_objective(torch.tensor(X), torch.tensor(Y), W0, b0, 10.0, loss, wt)
    assert (worse > ours * 1.01).all()


def test_integer_weights_equal_repeated_rows():
    """Weight k on a row = the row repeated k times (weight 0 = left out); [N] weights apply to
    every column."""
    X, Y = blobs(n=300, d=6, sep=1.0, seed=5)
    k = np.random.default_rng(6).integers(0, 4, size=300)
    Xt, Yt = torch.tensor(X), torch.tensor(Y)
    W, b = fit_linear_hinge(Xt, Yt, 2.0, weight=torch.tensor(k, dtype=torch.float64), tol=1e-12)
    rep = np.repeat(np.arange(300), k)
    Wr, br = fit_linear_hinge(Xt[rep], Yt[rep], 2.0, tol=1e-12)
    np.testing.assert_allclose(W.numpy(), Wr.numpy(), atol=1e-6)
    np.testing.assert_allclose(b.numpy(), br.numpy(), atol=1e-6)


def test_weighted_objective_matches_loop_twin():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(30, 4))
    Y = rng.choice([-1, 0, 1], size=(30, 2))
    wt = rng.random((30, 2)) * 3
    W, b = rng.normal(size=(2, 4)), rng.normal(size=2)
    got = hinge_objective(
        torch.tensor(X),
        torch.tensor(Y),
        torch.tensor(W),
        torch.tensor(b),
        2.0,
        "hinge",
        torch.tensor(wt),
    )
    want = []
    for c in range(2):
        f = 0.5 * float(W[c] @ W[c]) + 0.5 * float(b[c]) ** 2
        for i in range(30):
            if Y[i, c]:
                f += 2.0 * wt[i, c] * max(0.0, 1.0 - Y[i, c] * (float(X[i] @ W[c]) + b[c]))
        want.append(f)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_weight_errors():
    X, Y = torch.zeros(4, 2), torch.ones(4, 1)
    with pytest.raises(ValueError, match="weight must be \\[N\\]"):
        fit_linear_hinge(X, Y, weight=torch.ones(3))
    with pytest.raises(ValueError, match=">= 0"):
        fit_linear_hinge(X, Y, weight=-torch.ones(4))
