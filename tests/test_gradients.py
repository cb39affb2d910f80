"""Gradients through the analog forward stay finite and match the digital layer."""

import jax
import jax.numpy as jnp
import numpy as np

import devices
import xbar


def test_gradient_through_noisy_forward_matches_digital(getkey):
    # Sparse input: most rows carry zero voltage, so the read-noise variance of
    # several partial sums is exactly 0, where a plain sqrt has a NaN gradient.
    w = jax.random.normal(getkey(), (5, 300))
    x = jnp.zeros(300).at[jnp.array([0, 3, 299])].set(jnp.array([1.0, -0.5, 0.25]))

    def loss(w):
        layer = xbar.AnalogLinear.from_weights(
            w,
            None,
            xbar.AnalogConfig(
                devices.Ideal(),
                mapping=xbar.Mapping(tile_rows=64),
                dac=xbar.DAC(bits=None),
            ),
            key=jax.random.key(1),
        )
        return jnp.sum(layer(x, key=jax.random.key(2)))

    g = np.asarray(jax.grad(loss)(w))
    assert np.all(np.isfinite(g))
    # d/dW_ij sum_i (W x)_i = x_j for an ideal, noiseless, unquantized tile: the
    # conductance scale k cancels between mapping and read-out. Tolerance 1e-5:
    # float32 rounding of (g_min + k w) - g_min relative to k w, times |x| <= 1.
    np.testing.assert_allclose(g, np.broadcast_to(np.asarray(x), g.shape), atol=1e-5)
