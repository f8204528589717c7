"""Theory curves of Theorems 1-5: values, slopes, anchoring and log-log fits."""

import numpy as np
import pytest

from hypernets.experiments import theory


def test_curves_exact_values():
  np.testing.assert_allclose(theory.thm1_min_params(0.1, m=4, r=2), 100.0)
  np.testing.assert_allclose(theory.thm2_embedding_q_params(0.5, m1=2, m2=3), 32.0)
  # min(m1 + m2, 2 m1): 2 m1 = 4 < 5 here, m1 + m2 = 5 < 6 below.
  np.testing.assert_allclose(theory.thm3_embedding_q_params(0.5, m1=2, m2=3), 16.0)
  np.testing.assert_allclose(theory.thm3_embedding_q_params(0.5, m1=3, m2=2), 32.0)
  np.testing.assert_allclose(theory.thm4_primary_params(0.01, m1=3, r=3), 100.0)
  # w^(1 + m2/r) eps^(-m2/r) + w eps^(-m1/r) = 4^2 * 10 + 4 * 100.
  np.testing.assert_allclose(
      theory.thm5_hypernet_params(0.1, m1=4, m2=2, r=2, w=4), 160.0 + 400.0)
  np.testing.assert_allclose(
      theory.thm5_hypernet_params(0.1, m1=4, m2=2, r=2, w=4, n_g=7), 160.0 + 28.0)
  np.testing.assert_allclose(theory.thm5_standard_params(0.1, m1=4, m2=2, r=2), 1e3)


def test_curves_are_vectorised_over_eps():
  eps = np.array([0.5, 0.1, 0.01])
  n = theory.thm1_min_params(eps, m=2, r=1)
  assert n.shape == (3,)
  np.testing.assert_allclose(n, eps ** -2.0)
  assert theory.thm5_hypernet_params(eps, m1=2, m2=2, r=1, w=3).shape == (3,)


@pytest.mark.parametrize("name, kwargs, slope", [
    ("thm1", dict(m=6, r=2), -3.0),
    ("thm2", dict(m1=2, m2=3), -5.0),
    ("thm3", dict(m1=2, m2=3), -4.0),
    ("thm4", dict(m1=5, r=2), -2.5),
    ("thm5_standard", dict(m1=4, m2=2, r=2), -3.0),
])
def test_predicted_slope_of_power_laws(name, kwargs, slope):
  curve, description = theory.THEOREMS[name]
  assert description
  for eps in (0.3, 1e-3):
    np.testing.assert_allclose(theory.predicted_slope(curve, eps=eps, **kwargs), slope,
                               rtol=1e-7)


def test_thm5_hypernet_slope_tends_to_the_larger_exponent():
  kwargs = dict(m1=4, m2=2, r=2, w=4)
  # The eps^(-m1/r) term dominates as eps -> 0; at large eps the slope is between.
  assert -2.0 < theory.predicted_slope(theory.thm5_hypernet_params, eps=0.5,
                                       **kwargs) < -1.0
  np.testing.assert_allclose(
      theory.predicted_slope(theory.thm5_hypernet_params, eps=1e-8, **kwargs), -2.0,
      atol=1e-3)
  # With n_g fixed only the selector term depends on eps.
  np.testing.assert_allclose(
      theory.predicted_slope(theory.thm5_hypernet_params, eps=1e-8, n_g=10.0, **kwargs),
      -1.0, atol=1e-3)


def test_anchor_passes_through_the_measured_point():
  curve = theory.anchor(theory.thm1_min_params, eps0=0.2, n0=1234.0, m=3, r=2)
  np.testing.assert_allclose(curve(0.2), 1234.0)
  np.testing.assert_allclose(curve(np.array([0.2, 0.05])),
                             [1234.0, 1234.0 * 4 ** 1.5])
  hyper = theory.anchor(theory.thm5_hypernet_params, eps0=0.1, n0=50.0,
                        m1=2, m2=2, r=1, w=3)
  np.testing.assert_allclose(hyper(0.1), 50.0)


def test_fit_recovers_a_noisy_power_law():
  rng = np.random.default_rng(0)
  eps = np.logspace(-3, -1, 20)
  n = 7.0 * eps ** -1.5 * np.exp(0.05 * rng.standard_normal(eps.shape))
  slope, intercept = theory.fit_loglog_slope(eps, n)
  np.testing.assert_allclose(slope, -1.5, atol=0.05)
  np.testing.assert_allclose(intercept, np.log(7.0), atol=0.2)
  exact = theory.thm4_primary_params(eps, m1=3, r=2)
  exact_slope, _ = theory.fit_loglog_slope(eps, exact)
  np.testing.assert_allclose(exact_slope, -1.5, rtol=1e-9)


@pytest.mark.parametrize("eps, n, match", [
    ([0.1], [10.0], "at least 2 points"),
    ([0.1, 0.0], [10.0, 20.0], "eps must be finite and > 0"),
    ([0.1, 0.2], [10.0, -1.0], "n must be finite and > 0"),
    ([0.1, 0.2], [10.0, np.nan], "n must be finite and > 0"),
    ([0.1, 0.1], [10.0, 20.0], "distinct eps"),
    ([0.1, 0.2, 0.3], [10.0, 20.0], "same length"),
])
def test_fit_rejects_bad_input(eps, n, match):
  with pytest.raises(ValueError, match=match):
    theory.fit_loglog_slope(eps, n)


def test_curves_reject_bad_input():
  with pytest.raises(ValueError, match="eps must be finite and > 0"):
    theory.thm1_min_params(np.array([0.1, -0.1]), m=2, r=1)
  with pytest.raises(ValueError, match="r must be > 0"):
    theory.thm4_primary_params(0.1, m1=2, r=0)
  with pytest.raises(ValueError, match="n0 must be > 0"):
    theory.anchor(theory.thm1_min_params, eps0=0.1, n0=0.0, m=2, r=1)
