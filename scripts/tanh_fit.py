"""The coefficients of charmlp's vector tanh (core/src/simd.rs: TANH_P, TANH_Q).

tanh(x) ≈ x·P(x²)/Q(x²) with P, Q of degree 4 and Q(0) = 1, fitted on [0, 9] for the least
largest relative error: Sanathanan–Koerner iterations (the linearised problem
x·P − tanh·Q = 0, weighted by the previous Q) started from tanh's [7/6] Padé denominator, with
Lawson's reweighting toward the points of largest error. Prints the largest relative error of
the fit in float64 and the coefficients rounded to float32, highest power first, as the Rust
constants hold them (each the shortest decimal that reads back as the same float32).

    python scripts/tanh_fit.py        # needs numpy and mpmath
"""

import mpmath
import numpy as np

DEGREE_P, DEGREE_Q, END, ROUNDS = 4, 4, 9.0, 60

mpmath.mp.dps = 40
x = np.unique(np.concatenate([np.linspace(1e-4, END, 20000), np.geomspace(1e-6, 1, 2000)]))
f = np.array([float(mpmath.tanh(mpmath.mpf(v))) for v in x])
s = x * x


def fit(weights, q_before):
    """The least-squares P, Q (Q(0) = 1) of Σ w·((x·P(s) − f·Q(s)) / (f·Q_before(s)))²."""
    a = np.hstack([x[:, None] * s[:, None] ** np.arange(DEGREE_P + 1),
                   -(f[:, None] * s[:, None] ** np.arange(1, DEGREE_Q + 1))])
    w = np.sqrt(weights) / (f * q_before)
    coef, *_ = np.linalg.lstsq(a * w[:, None], f * w, rcond=None)
    return coef[:DEGREE_P + 1], np.concatenate([[1.0], coef[DEGREE_P + 1:]])


def value(c, t):
    """Σ c_k t^k, c lowest power first."""
    return np.polyval(c[::-1], t)


weights = np.ones_like(x)
q_before = (135135 + 62370 * s + 3150 * s**2 + 28 * s**3) / 135135  # Padé [7/6]
best = None
for _ in range(ROUNDS):
    p, q = fit(weights, q_before)
    q_before = value(q, s)
    err = (x * value(p, s) / q_before - f) / f
    worst = np.max(np.abs(err))
    if np.all(q_before > 0) and (best is None or worst < best[0]):
        best = (worst, p, q)
    weights = weights * (np.abs(err) / worst + 1e-3)
    weights /= weights.mean()

worst, p, q = best
print(f"largest relative error on [0, {END}] before rounding: {worst:.2e}")
for name, c in (("TANH_P", p), ("TANH_Q", q)):
    # The shortest decimal that reads back as the same float32.
    print(f"{name}: [{', '.join(str(np.float32(v)) for v in c[::-1])}]")
