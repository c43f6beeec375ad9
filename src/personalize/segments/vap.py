"""Value, attrition, potential: two small probabilistic models of customers, fitted with numpy/scipy.

* **BG/NBD** (Fader, Hardie & Lee, 2005) for *whether* and *how often* a customer buys:
  while alive, a customer buys as a Poisson process with rate λ ~ Gamma(r, α); after
  each purchase they may leave for good with probability p ~ Beta(a, b). From each
  customer's repeat purchases ``x``, the time of the last one ``t_x`` and their age
  ``T`` we fit (r, α, a, b) by maximum likelihood, then get P(alive) and the expected
  number of purchases in the next ``t``.
* **Gamma-Gamma** (Fader, Hardie & Lee, 2005, "RFM and CLV") for *how much*: order
  values of a customer vary around their own mean, which itself varies across
  customers; it gives the expected value of a customer's future order, shrinking a
  customer with few orders towards the population mean.

Everything works on arrays; no database here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import gammaln, hyp2f1


@dataclass(frozen=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float

    def p_alive(self, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
        """P(still a customer | x repeat purchases, the last at t_x, observed for T)."""
        x, tx, T = (np.asarray(v, dtype=np.float64) for v in (x, tx, T))
        with np.errstate(over="ignore"):  # a huge ratio means "surely gone": 1 / (1 + inf) = 0
            ratio = np.exp((self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + tx)))
            odds = np.where(x > 0, self.a / (self.b + np.maximum(x, 1) - 1) * ratio, 0.0)
            return 1.0 / (1.0 + odds)

    def expected_purchases(self, t: float, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
        """E[purchases in the next ``t`` | x, t_x, T] (same time unit as the fit)."""
        x, tx, T = (np.asarray(v, dtype=np.float64) for v in (x, tx, T))
        with np.errstate(all="ignore"):  # non-finite results are cleaned below
            return self._expected(t, x, tx, T)

    def p_order(self, t: float, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
        """P(at least one purchase in the next ``t`` | x, t_x, T).

        A customer who dropped out buys no more; one still alive buys at a rate whose
        posterior is Gamma(r + x, α + T), so no purchase in ``t`` has probability
        ((α + T) / (α + T + t))^(r + x). Hence P = P(alive) · (1 − that).
        """
        x, T = np.asarray(x, dtype=np.float64), np.asarray(T, dtype=np.float64)
        quiet = np.exp((self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + T + t)))
        return self.p_alive(x, tx, T) * (1.0 - quiet)

    def _expected(self, t: float, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = t / (alpha + T + t)
        head = (a + b + x - 1) / (a - 1)
        body = 1.0 - np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t))) * hyp2f1(r + x, b + x, a + b + x - 1, z)
        ratio = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + tx)))
        denom = 1.0 + np.where(x > 0, a / (b + np.maximum(x, 1) - 1) * ratio, 0.0)
        out = head * body / denom
        return np.clip(np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)


def bgnbd_log_likelihood(params: np.ndarray, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-customer log-likelihood of (r, α, a, b)."""
    r, alpha, a, b = params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    a4 = np.where(x > 0, np.log(a) - np.log(b + np.maximum(x, 1) - 1) - (r + x) * np.log(alpha + tx), -np.inf)
    return a1 + a2 + np.logaddexp(a3, a4)


def fit_bgnbd(x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> BgNbd:
    """Maximum-likelihood BG/NBD parameters (optimised on their logarithms, so they stay positive)."""
    x, tx, T = (np.asarray(v, dtype=np.float64) for v in (x, tx, T))

    def loss(logp: np.ndarray) -> float:
        with np.errstate(all="ignore"):  # the search may step where the likelihood is undefined
            value = -bgnbd_log_likelihood(np.exp(logp), x, tx, T).mean()
        return float(value) if np.isfinite(value) else 1e12

    start = np.log([1.0, max(float(T.mean()), 1.0), 1.0, 1.0])
    best = minimize(loss, start, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-9})
    best = minimize(loss, best.x, method="L-BFGS-B", bounds=[(-8, 8)] * 4)
    r, alpha, a, b = np.exp(best.x)
    return BgNbd(float(r), float(alpha), float(a), float(b))


@dataclass(frozen=True)
class GammaGamma:
    p: float
    q: float
    gamma: float

    def expected_order_value(self, n: np.ndarray, mean_value: np.ndarray) -> np.ndarray:
        """E[value of a future order | n orders averaging ``mean_value``]."""
        n = np.asarray(n, dtype=np.float64)
        m = np.asarray(mean_value, dtype=np.float64)
        return self.p * (self.gamma + n * m) / (self.p * n + self.q - 1)


def gamma_gamma_log_likelihood(params: np.ndarray, n: np.ndarray, m: np.ndarray) -> np.ndarray:
    p, q, g = params
    return (
        gammaln(p * n + q) - gammaln(p * n) - gammaln(q) + q * np.log(g)
        + (p * n - 1) * np.log(m) + p * n * np.log(n) - (p * n + q) * np.log(n * m + g)
    )


def fit_gamma_gamma(n: np.ndarray, mean_value: np.ndarray) -> GammaGamma:
    """Fit on customers with at least one order and a positive mean order value (q kept above 1)."""
    n = np.asarray(n, dtype=np.float64)
    m = np.asarray(mean_value, dtype=np.float64)
    keep = (n >= 1) & (m > 0)
    n, m = n[keep], m[keep]

    def unpack(v: np.ndarray) -> np.ndarray:
        return np.array([np.exp(v[0]), 1.0 + np.exp(v[1]), np.exp(v[2])])

    def loss(v: np.ndarray) -> float:
        with np.errstate(all="ignore"):
            value = -gamma_gamma_log_likelihood(unpack(v), n, m).mean()
        return float(value) if np.isfinite(value) else 1e12

    start = np.array([0.0, np.log(2.0), np.log(max(float(np.median(m)), 1.0))])
    best = minimize(loss, start, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-9})
    p, q, g = unpack(best.x)
    return GammaGamma(float(p), float(q), float(g))
