"""Theory curves: the orders of the bounds of Theorems 1-5 of the paper.

Each `thm*` function gives the number of parameters N(eps) a theorem predicts,
up to its unknown constant factor (and, for Thm 5, unknown constants per term),
as a function of the error eps and the dimensions m1 (of x), m2 (of I), the
smoothness r and, where they appear, the selector width w and the primary size
N_g. They are vectorised over eps (numpy). To compare with measurements, `anchor`
scales a curve through one measured point and `fit_loglog_slope` fits the slope
of measured (eps, N) pairs, to print beside `predicted_slope`.
"""

from typing import Callable

import numpy as np


def _as_eps(eps) -> np.ndarray:
  """eps as a float64 array; all entries must be finite and positive."""
  eps = np.asarray(eps, dtype=np.float64)
  if not np.all(np.isfinite(eps)) or np.any(eps <= 0):
    raise ValueError(f"eps must be finite and > 0, got {eps}")
  return eps


def _check_positive(**values) -> None:
  for name, value in values.items():
    if not value > 0:
      raise ValueError(f"{name} must be > 0, got {value}")


def thm1_min_params(eps, *, m: int, r: float) -> np.ndarray:
  """Thm 1 (lower bound): approximating all of W_{r,m} to eps needs Omega(eps^(-m/r)).

  Holds for any net whose activation is piecewise C^1 with derivative of bounded
  variation. Constants unknown. eps [...] -> N [...].
  """
  _check_positive(m=m, r=r)
  return _as_eps(eps) ** (-m / r)


def thm2_embedding_q_params(eps, *, m1: int, m2: int) -> np.ndarray:
  """Thm 2: e bias-free C^1 with output size O(1): N_q = Omega(eps^(-(m1+m2))).

  On W_{1,m} (r = 1), e of bounded spectral complexity, sigma(0) = 0. Constants
  unknown. eps [...] -> N_q [...].
  """
  _check_positive(m1=m1, m2=m2)
  return _as_eps(eps) ** (-(m1 + m2))


def thm3_embedding_q_params(eps, *, m1: int, m2: int) -> np.ndarray:
  """Thm 3: q's first layer ||W1||_1 <= c: N_q = Omega(eps^(-min(m, 2 m1))).

  m = m1 + m2, on W_{1,m}; the embedding size may grow with 1/eps. Constants
  unknown. eps [...] -> N_q [...].
  """
  _check_positive(m1=m1, m2=m2)
  return _as_eps(eps) ** (-min(m1 + m2, 2 * m1))


def thm4_primary_params(eps, *, m1: int, r: float) -> np.ndarray:
  """Thm 4 (modularity): a primary with N_g = O(eps^(-m1/r)) and a ReLU f reach eps.

  sup_I ||g(.; f(I)) - y_I||_inf <= eps: the primary is as small as a net fitting
  one y_I alone (Thm 1 with m = m1). Constants unknown. eps [...] -> N_g [...].
  """
  _check_positive(m1=m1, r=r)
  return _as_eps(eps) ** (-m1 / r)


def thm5_hypernet_params(eps, *, m1: int, m2: int, r: float, w: int,
                         n_g=None) -> np.ndarray:
  """Thm 5: N_f = O(w^(1+m2/r) eps^(-m2/r) + w N_g) for a selector W h(I).

  ||W||_1 <= c, each coordinate of h in W_{r,m2}. `n_g` (scalar or broadcastable
  to eps) defaults to Thm 4's eps^(-m1/r), giving O(eps^(-m2/r) + eps^(-m1/r))
  for fixed w. Both terms have unit constants here; the true constants are
  unknown. eps [...] -> N_f [...].
  """
  _check_positive(m1=m1, m2=m2, r=r, w=w)
  eps = _as_eps(eps)
  if n_g is None:
    n_g = thm4_primary_params(eps, m1=m1, r=r)
  return w ** (1 + m2 / r) * eps ** (-m2 / r) + w * np.asarray(n_g, np.float64)


def thm5_standard_params(eps, *, m1: int, m2: int, r: float) -> np.ndarray:
  """Thm 5: a standard net on (x, I) needs Omega(eps^(-(m1+m2)/r)) on the same targets.

  Constants unknown. eps [...] -> N [...].
  """
  _check_positive(m1=m1, m2=m2, r=r)
  return _as_eps(eps) ** (-(m1 + m2) / r)


# name -> (curve, one-line description), e.g. for a report's legend.
THEOREMS: dict[str, tuple[Callable[..., np.ndarray], str]] = {
    "thm1": (thm1_min_params,
             "lower bound for any net on W_{r,m}: N = Omega(eps^(-m/r))"),
    "thm2": (thm2_embedding_q_params,
             "embedding method, O(1) embedding: N_q = Omega(eps^(-(m1+m2)))"),
    "thm3": (thm3_embedding_q_params,
             "embedding method, bounded first layer of q: "
             "N_q = Omega(eps^(-min(m1+m2, 2 m1)))"),
    "thm4": (thm4_primary_params,
             "modularity: the hypernetwork's primary needs N_g = O(eps^(-m1/r))"),
    "thm5_hypernet": (thm5_hypernet_params,
                      "structured target W h(I): "
                      "N_f = O(w^(1+m2/r) eps^(-m2/r) + w N_g)"),
    "thm5_standard": (thm5_standard_params,
                      "structured target, standard net on (x, I): "
                      "N = Omega(eps^(-(m1+m2)/r))"),
}


def predicted_slope(theory_fn: Callable[..., np.ndarray], *, eps=0.1,
                    **kwargs) -> np.ndarray:
  """d log N / d log eps of `theory_fn(eps, **kwargs)` at `eps` (e.g. -m/r for Thm 1).

  For the pure power laws the slope is the same at every eps; for Thm 5's sum of
  two powers it is the local slope, tending to -max(m1, m2)/r as eps -> 0 (with
  the default n_g). Central difference in log eps, exact for power laws up to
  rounding (~1e-10). eps [...] -> slope [...].
  """
  log_eps = np.log(_as_eps(eps))
  step = 1e-5
  upper = np.log(theory_fn(np.exp(log_eps + step), **kwargs))
  lower = np.log(theory_fn(np.exp(log_eps - step), **kwargs))
  return (upper - lower) / (2 * step)


def anchor(curve_fn: Callable[..., np.ndarray], *, eps0: float, n0: float,
           **kwargs) -> Callable[[np.ndarray], np.ndarray]:
  """`eps -> c * curve_fn(eps, **kwargs)` with c chosen so it passes through (eps0, n0).

  Fixes the theorem's unknown constant by one measured point; the shape (slope)
  is the theorem's. For Thm 5's two-term curve one common factor scales both terms.
  """
  _check_positive(n0=n0)
  scale = n0 / float(curve_fn(_as_eps(eps0), **kwargs))

  def anchored(eps):
    return scale * curve_fn(eps, **kwargs)

  return anchored


def fit_loglog_slope(eps, n) -> tuple[float, float]:
  """Least-squares fit log n = slope * log eps + intercept.

  Args:
    eps: errors [K], all > 0.
    n: parameter counts [K] (or any positive measurement), all > 0.

  Returns:
    (slope, intercept), natural logs.
  """
  eps = np.asarray(eps, dtype=np.float64).ravel()
  n = np.asarray(n, dtype=np.float64).ravel()
  if eps.shape != n.shape:
    raise ValueError(f"eps and n must have the same length, got {eps.size} and {n.size}")
  if eps.size < 2:
    raise ValueError(f"fitting a slope needs at least 2 points, got {eps.size}")
  for name, values in (("eps", eps), ("n", n)):
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
      raise ValueError(f"{name} must be finite and > 0 for a log-log fit, got {values}")
  if np.ptp(np.log(eps)) == 0:
    raise ValueError("fitting a slope needs at least 2 distinct eps values")
  slope, intercept = np.polyfit(np.log(eps), np.log(n), deg=1)
  return float(slope), float(intercept)
