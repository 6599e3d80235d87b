"""Imports every built-in measure module so that their decorators register them."""

from genmeasures.measures import (  # noqa: F401
    density,
    distance,
    distance_bound,
    hessian,
    hessian_distance,
    noise_stability,
)
