"""Batches: a VJP vmapped over padded batches of cotangents, and a batch axis split over devices.

Each VJP of a check is one jit-compiled function of ``(x, G)``, vmapped over a fixed batch of
:data:`VJP_BATCH` cotangents (padded), so one compilation serves every cotangent of every comparison:
far cheaper than eager evaluation, which compiles every primitive separately. Stacking, padding and
unstacking happen in numpy: the same steps as jnp operations would each compile a small XLA program
per shape on first use (~15 ms apiece).

Full mode splits its batch of finite-difference perturbations over the devices of a 1-D mesh (axis
:data:`FD_AXIS`), as fnnet.parallel splits a training batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

VJP_BATCH = 8
FD_AXIS = "fd"


def batched_vjp(F):
    """``jit((x, G) -> [VJP of F at x applied to G[b] for b])``, vmapped over the cotangents."""

    def apply(x, g):
        return list(jax.vjp(F, x)[1](g)[0])

    return jax.jit(jax.vmap(apply, in_axes=(None, 0)))


def batched_vjp_pair(F, R):
    """``jit((x, G) -> VJPs of F then of R at x for each G[b])``: both float64 VJPs in one program."""

    def apply(x, g):
        return list(jax.vjp(F, x)[1](g)[0]) + list(jax.vjp(R, x)[1](g)[0])

    return jax.jit(jax.vmap(apply, in_axes=(None, 0)))


def put(a):
    """A numpy array onto the default device. (``jnp.asarray`` of a numpy array compiles a small copy
    program per shape on first use; a transfer does not.) Call inside float64_scope for float64."""
    return jax.device_put(a)


def apply_batched(fn, F, x, gs, dtypes) -> list:
    """Run the batched VJP ``fn`` over ``gs`` in padded batches of VJP_BATCH; per-cotangent lists of arrays.

    A rule that cannot be vmapped (e.g. a callback without a batching rule) falls back to one jit
    call per cotangent of ``F``'s VJP (``F=None``: no fallback).
    """
    gs = [[np.asarray(gi, dtype=dt) for gi, dt in zip(g, dtypes)] for g in gs]
    out = []
    try:
        for start in range(0, len(gs), VJP_BATCH):
            part = gs[start : start + VJP_BATCH]
            k = len(part)
            part = part + [part[0]] * (VJP_BATCH - k)
            stacked = [put(np.stack([g[j] for g in part])) for j in range(len(part[0]))]
            res = [np.asarray(r) for r in fn(x, stacked)]
            out += [[r[b] for r in res] for b in range(k)]
        return out
    except (ValueError, TypeError):
        raise
    except Exception:
        if F is None:
            raise
        single = jax.jit(lambda x, g: list(jax.vjp(F, x)[1](g)[0]))
        return [[np.asarray(r) for r in single(x, [jnp.asarray(gi) for gi in g])] for g in gs]


def fd_mesh(devices):
    """A 1-D mesh over ``devices`` ("auto": every device of the default backend when there are
    several; None or one device: no mesh)."""
    if devices == "auto":
        devices = jax.devices()
    if devices is None or len(devices) < 2:
        return None
    return jax.sharding.Mesh(np.asarray(list(devices)), (FD_AXIS,))


def batch_sharding(mesh):
    """The batch axis split over the mesh's devices."""
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(FD_AXIS))


def replicated(mesh):
    """A copy on every device of the mesh."""
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
