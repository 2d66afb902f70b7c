"""jaxtyping aliases used in signatures across jscore.

Convention: ``x`` is one chain's state of shape ``(d,)``; batching is ``jax.vmap`` outside.
"""

from __future__ import annotations

from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

Sample = Float[Array, " d"]
Score = Float[Array, " d"]
Mask = Bool[Array, " d"]
Sigma = Float[ArrayLike, ""]
Sigmas = Float[Array, " n_plus_1"]
Key = PRNGKeyArray | Array
Count = Int[Array, ""]

__all__ = ["Sample", "Score", "Mask", "Sigma", "Sigmas", "Key", "Count"]
