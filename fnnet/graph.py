"""Computation graphs, differentiated the way the lecture describes backpropagation.

    1. create a topological sort of the computation graph;
    2. compute each variable in that order (the forward pass);
    3. compute the backward pass in reverse order, each node pushing its cotangent to its inputs
       with its op's hand-written rule, summed (``+=``) where a value is used more than once.

A graph is a list of nodes ``(name, op, input_names)`` or ``(name, op, input_names, static)`` in any
order. ``op`` is an fnnet :class:`~fnnet.primitive.Primitive`, its public function (which carries
``.primitive``) or a registered name (``"sigmoid"``, resolved with :func:`fnnet.primitive.get`).
``static`` is an optional dict of the op's hyperparameters (``{"negative_slope": 0.1}``); the op's
defaults fill the rest. A name that no node produces is an *input* (data or a parameter).

The backward pass calls only ``prim.fwd`` (for the residuals) and ``prim.bwd`` (the hand rule): no
``jax.vjp``, no tracing of the forward for autodiff. The structure (names, ops, order) is plain Python
fixed when the graph is built; the values are arrays, so ``forward``/``backward``/``value_and_grad``
work eagerly, under :func:`jax.jit` and under :func:`jax.vmap`. Nothing is recursive: a
10,000-node chain sorts and runs without touching Python's recursion limit.

Values. Inputs are floating arrays or pytrees of them. A node's value is whatever its op's forward
returns: an array for every op fnnet has today; an op whose forward returns a pytree (a tuple of
outputs, a dict) gives the node that pytree, its cotangent has the same structure, and a consumer
receives the whole pytree as its argument (there is no selector syntax such as ``"node[0]"``: pick a
component with an op that does so). Cotangents are accumulated leaf by leaf.

Example::

    g = Graph([
        ("z", "dense", ["x", "W", "b"]),
        ("h", fnnet.sigmoid, ["z"]),
        ("loss", "sum", ["h"]),
    ])
    values = g.forward({"x": x, "W": W, "b": b})
    grads = g.backward(values, {"loss": jnp.ones(())})      # {"x": ..., "W": ..., "b": ...}
    loss, grads = g.value_and_grad("loss", wrt=["W", "b"])({"x": x, "W": W, "b": b})
"""
from __future__ import annotations

import dataclasses
import heapq
from typing import Any, Callable, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp

from fnnet import primitive as _primitive
from fnnet._checks import as_float_array, static_value
from fnnet.primitive import Primitive

__all__ = ["Graph", "GraphError", "Node"]


class GraphError(ValueError):
    """A malformed graph or a bad call on one; the message names the nodes, inputs or shapes at fault."""


@dataclasses.dataclass(frozen=True)
class Node:
    """One node: ``name = op(*inputs, **static)``.

    ``op`` is the resolved :class:`~fnnet.primitive.Primitive`; ``static`` holds every hyperparameter
    of the op (the node's own values over the op's defaults), as a tuple of ``(key, value)`` pairs so the
    node is hashable.
    """

    name: str
    op: Primitive
    inputs: tuple[str, ...]
    static: tuple[tuple[str, Any], ...] = ()

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.static)


def _resolve_op(op, where: str) -> Primitive:
    try:
        return _primitive.resolve(op)
    except KeyError as e:
        raise GraphError(f"{where}: {e.args[0]}") from None
    except TypeError as e:
        raise GraphError(f"{where}: {e}") from None


def _make_node(spec, index: int) -> Node:
    if isinstance(spec, Node):
        return spec
    if not isinstance(spec, (tuple, list)) or len(spec) not in (3, 4):
        raise GraphError(
            f"node #{index}: expected (name, op, input_names) or (name, op, input_names, static); "
            f"got {spec!r}"
        )
    name, op, inputs = spec[:3]
    static = spec[3] if len(spec) == 4 else None
    if not isinstance(name, str) or not name:
        raise GraphError(f"node #{index}: the name must be a non-empty str; got {name!r}")
    where = f"node {name!r}"
    prim = _resolve_op(op, where)
    if isinstance(inputs, str):
        # ("h", sigmoid, "x") is the usual slip for ["x"]; a str is iterable, so say it plainly.
        raise GraphError(f"{where}: input_names must be a list of names; got the str {inputs!r}")
    try:
        inputs = tuple(inputs)
    except TypeError:
        raise GraphError(f"{where}: input_names must be a list of names; got {inputs!r}") from None
    for i in inputs:
        if not isinstance(i, str):
            raise GraphError(f"{where}: input names must be str; got {i!r}")
    if len(inputs) != len(prim.arg_names):
        raise GraphError(
            f"{where}: op {prim.name!r} takes {len(prim.arg_names)} input(s) "
            f"({', '.join(prim.arg_names)}); got {len(inputs)}: {list(inputs)}"
        )
    static = dict(static or {})
    unknown = sorted(set(static) - set(prim.static_defaults))
    if unknown:
        known = ", ".join(prim.static_defaults) or "none"
        raise GraphError(
            f"{where}: op {prim.name!r} has no hyperparameter(s) {unknown}; its hyperparameters: {known}"
        )
    merged = dict(prim.static_defaults)
    for k, v in static.items():
        try:
            merged[k] = static_value(v, k, where)
        except TypeError as e:
            raise GraphError(str(e)) from None
    return Node(name, prim, inputs, tuple(merged.items()))


def _toposort(nodes: Sequence[Node]) -> tuple[int, ...]:
    """Kahn's algorithm over node indices; among ready nodes the earliest declared goes first.

    Iterative (a heap of ready indices, no recursion), O((V + E) log V). Raises GraphError naming the
    nodes of one cycle when some nodes never become ready.
    """
    index = {n.name: i for i, n in enumerate(nodes)}
    indegree = [0] * len(nodes)
    consumers: list[list[int]] = [[] for _ in nodes]
    for i, n in enumerate(nodes):
        for inp in n.inputs:
            j = index.get(inp)
            if j is not None:  # an edge from a node; graph inputs are ready from the start
                indegree[i] += 1
                consumers[j].append(i)  # once per use: a node reading h twice waits on both edges
    ready = [i for i, d in enumerate(indegree) if d == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for c in consumers[i]:
            indegree[c] -= 1
            if indegree[c] == 0:
                heapq.heappush(ready, c)
    if len(order) < len(nodes):
        raise GraphError(_describe_cycle(nodes, index, indegree))
    return tuple(order)


def _describe_cycle(nodes, index, indegree) -> str:
    # Every node left with indegree > 0 has an unfinished predecessor; walking from one to such a
    # predecessor repeatedly must revisit a node, and the walk from that node's first visit is a cycle.
    stuck = [i for i, d in enumerate(indegree) if d > 0]
    walk: list[int] = []
    seen: dict[int, int] = {}
    i = stuck[0]
    while i not in seen:
        seen[i] = len(walk)
        walk.append(i)
        i = next(index[p] for p in nodes[i].inputs if p in index and indegree[index[p]] > 0)
    # walk follows edges backwards (node -> its input); reverse to print in data-flow direction.
    cycle = [nodes[j].name for j in reversed(walk[seen[i]:])]
    cycle.append(cycle[0])
    others = sorted({nodes[j].name for j in stuck} - set(cycle))
    tail = f"; also not orderable (downstream of it): {others}" if others else ""
    return f"the graph has a cycle: {' -> '.join(cycle)}{tail}"


def _check_float_tree(value, name: str):
    leaves = jax.tree.leaves(value)
    if not leaves:
        raise GraphError(f"input {name!r}: expected a floating array or a pytree of them; got {value!r}")
    out = []
    for leaf in leaves:
        try:
            out.append(as_float_array(leaf, name, "Graph.forward"))
        except TypeError as e:
            raise GraphError(str(e)) from None
    return jax.tree.unflatten(jax.tree.structure(value), out)


def _describe_call(n: Node, args) -> str:
    def desc(v):
        if hasattr(v, "shape") and hasattr(v, "dtype"):
            return f"{v.dtype}{list(v.shape)}"
        return jax.tree.map(desc, v) if jax.tree.leaves(v) else repr(v)

    shown = ", ".join(f"{a}={i!r}: {desc(v)}" for a, i, v in zip(n.op.arg_names, n.inputs, args))
    return f"node {n.name!r} = {n.op.name}({shown})"


def _add(a, b):
    return jax.tree.map(jnp.add, a, b)


class Graph:
    """A computation graph over fnnet primitives. See the module docstring.

    Attributes:
      nodes: the nodes in declaration order (:class:`Node`).
      order: the node names in topological order (Kahn's algorithm, ties by declaration order).
      inputs: the names no node produces, in order of first use (data and parameters alike).
    """

    def __init__(self, nodes: Iterable[Any]) -> None:
        nodes = [_make_node(spec, i) for i, spec in enumerate(nodes)]
        first: dict[str, int] = {}
        for i, n in enumerate(nodes):
            if n.name in first:
                raise GraphError(
                    f"duplicate node name {n.name!r}: declared as node #{first[n.name]} "
                    f"({nodes[first[n.name]].op.name}) and node #{i} ({n.op.name})"
                )
            first[n.name] = i
        self.nodes: tuple[Node, ...] = tuple(nodes)
        self._by_name = {n.name: n for n in nodes}
        inputs: dict[str, None] = {}
        for n in nodes:
            for inp in n.inputs:
                if inp not in self._by_name:
                    inputs.setdefault(inp)
        self.inputs: tuple[str, ...] = tuple(inputs)
        self._order = tuple(self.nodes[i] for i in _toposort(self.nodes))
        self.order: tuple[str, ...] = tuple(n.name for n in self._order)

    def __repr__(self):
        return f"Graph({len(self.nodes)} nodes, inputs={list(self.inputs)})"

    def __len__(self):
        return len(self.nodes)

    def node(self, name: str) -> Node:
        """The node called ``name``."""
        try:
            return self._by_name[name]
        except KeyError:
            raise GraphError(f"no node named {name!r}; nodes: {list(self.order)}") from None

    # ------------------------------------------------------------------------------------------
    # Forward
    # ------------------------------------------------------------------------------------------
    def _check_values(self, values: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(values, Mapping):
            raise GraphError(f"values must be a dict from input name to array; got {type(values).__name__}")
        missing = [i for i in self.inputs if i not in values]
        if missing:
            users = {
                m: [n.name for n in self.nodes if m in n.inputs] for m in missing
            }
            detail = "; ".join(f"{m!r} (used by {', '.join(map(repr, u))})" for m, u in users.items())
            raise GraphError(f"missing value for input {detail}")
        return {i: _check_float_tree(values[i], i) for i in self.inputs}

    def _run(self, values, keep_residuals: bool):
        env = self._check_values(values)
        residuals = {}
        for n in self._order:
            args = [env[i] for i in n.inputs]
            try:
                out, res = n.op.fwd(*args, **n.kwargs)
            except (TypeError, ValueError) as e:
                # The op's own message (a shape or dtype clash from jnp) does not say which node.
                raise GraphError(f"{_describe_call(n, args)} failed in forward: {e}") from e
            env[n.name] = out
            if keep_residuals:
                residuals[n.name] = res
        return env, residuals

    def forward(
        self, values: Mapping[str, Any], *, return_residuals: bool = False
    ) -> dict[str, Any] | tuple[dict[str, Any], dict[str, Any]]:
        """Evaluate every node in topological order.

        Arguments:
          values: a value for every input (``graph.inputs``). Other entries are ignored: values for
            node names (a dict returned by ``forward`` may be passed back; its nodes are recomputed)
            and names the graph does not use (one parameter dict can serve several graphs).
          return_residuals: also return ``{node: residuals}``, what each op's ``fwd`` saved for its
            backward rule, to pass to :meth:`backward` and skip recomputing them.

        Returns:
          ``{name: value}`` for the inputs and every node (and the residuals dict if asked).
        """
        env, residuals = self._run(values, return_residuals)
        return (env, residuals) if return_residuals else env

    # ------------------------------------------------------------------------------------------
    # Backward
    # ------------------------------------------------------------------------------------------
    def backward(
        self,
        values: Mapping[str, Any],
        cotangents: Mapping[str, Any],
        *,
        residuals: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Reverse-mode pass with the ops' hand-written rules.

        Arguments:
          values: the dict returned by :meth:`forward` (inputs and node values).
          cotangents: ``{name: cotangent}`` for one or more nodes (or inputs), each in the shape and
            dtype of that value; several seeds are summed, i.e. the result is the VJP of the map from
            the inputs to all the seeded values.
          residuals: the residuals from ``forward(..., return_residuals=True)``; without them each
            node that the backward pass visits calls its op's ``fwd`` again on its stored inputs
            (under ``jit`` XLA merges that recomputation with the forward's).

        Returns:
          ``{input: cotangent}`` for every graph input, in the input's shape and dtype: the sum over
          every path from the input to the seeds (``+=`` at each fan-out), zeros for an input that
          reaches none of the seeds.
        """
        if not isinstance(cotangents, Mapping) or not cotangents:
            raise GraphError("cotangents must be a non-empty dict from node name to cotangent")
        missing = [k for k in (*self.inputs, *self.order) if k not in values]
        if missing:
            raise GraphError(
                f"values has no entry for {missing[:5]}{'...' if len(missing) > 5 else ''}; "
                "pass the dict returned by forward()"
            )
        ct: dict[str, Any] = {}
        for name, g in cotangents.items():
            if name not in self._by_name and name not in self.inputs:
                raise GraphError(
                    f"cotangent given for {name!r}, which is neither a node nor an input of the graph"
                )
            ct[name] = self._check_cotangent(name, values[name], g)
        for n in reversed(self._order):
            if n.name not in ct:
                continue  # no path from this node to any seed: it contributes nothing
            g = ct.pop(n.name)
            if residuals is not None and n.name in residuals:
                res = residuals[n.name]
            else:
                _, res = n.op.fwd(*(values[i] for i in n.inputs), **n.kwargs)
            try:
                grads = tuple(n.op.bwd(res, g, **n.kwargs))
            except (TypeError, ValueError) as e:
                args = [values[i] for i in n.inputs]
                raise GraphError(f"{_describe_call(n, args)} failed in backward: {e}") from e
            if len(grads) != len(n.inputs):
                raise GraphError(
                    f"node {n.name!r}: op {n.op.name!r}'s backward rule returned {len(grads)} "
                    f"cotangent(s) for {len(n.inputs)} input(s)"
                )
            for inp, gi in zip(n.inputs, grads):
                if gi is None:  # a rule may return None for a symbolically zero cotangent
                    continue
                ct[inp] = _add(ct[inp], gi) if inp in ct else gi  # fan-out: +=
        return {
            i: ct[i] if i in ct else jax.tree.map(jnp.zeros_like, values[i]) for i in self.inputs
        }

    @staticmethod
    def _check_cotangent(name, value, g):
        vs, gs = jax.tree.structure(value), jax.tree.structure(g)
        if vs != gs:
            raise GraphError(f"cotangent for {name!r}: expected the structure {vs}; got {gs}")
        out = []
        for v, c in zip(jax.tree.leaves(value), jax.tree.leaves(g)):
            c = jnp.asarray(c) if not hasattr(c, "shape") else c
            if c.shape != v.shape or c.dtype != v.dtype:
                raise GraphError(
                    f"cotangent for {name!r}: expected shape {tuple(v.shape)} and dtype {v.dtype} "
                    f"(those of its value); got shape {tuple(c.shape)} and dtype {c.dtype}"
                )
            out.append(c)
        return jax.tree.unflatten(vs, out)

    def vjp(
        self, values: Mapping[str, Any], outputs: str | Sequence[str]
    ) -> tuple[Any, Callable[[Any], dict[str, Any]]]:
        """``(outs, vjp_fn)`` like :func:`jax.vjp`: ``vjp_fn(cts)`` gives ``{input: cotangent}``.

        ``outputs`` is a name (``cts`` one cotangent) or a sequence of names (``cts`` a matching tuple).
        """
        single = isinstance(outputs, str)
        names = [outputs] if single else list(outputs)
        for o in names:
            if o not in self._by_name and o not in self.inputs:
                raise GraphError(f"output {o!r} is neither a node nor an input of the graph")
        env, residuals = self._run(values, keep_residuals=True)
        outs = env[names[0]] if single else tuple(env[o] for o in names)

        def vjp_fn(cts):
            cts = [cts] if single else list(cts)
            seeds: dict[str, Any] = {}
            for o, c in zip(names, cts, strict=True):
                seeds[o] = _add(seeds[o], c) if o in seeds else c
            return self.backward(env, seeds, residuals=residuals)

        return outs, vjp_fn

    def value_and_grad(
        self, output: str, wrt: str | Sequence[str] | None = None
    ) -> Callable[[Mapping[str, Any]], tuple[Any, Any]]:
        """A function ``values -> (value of output, gradient)`` for a scalar ``output``.

        Arguments:
          output: the name of a node whose value is a scalar (shape ``()``) floating array.
          wrt: an input name (the gradient is then one array, like ``jax.grad``'s ``argnums=int``), a
            sequence of input names (a dict by name), or None for every input (a dict).

        The gradient is in the shape convention: each entry has its input's shape.
        """
        if output not in self._by_name:
            raise GraphError(f"output {output!r} is not a node of the graph; nodes: {list(self.order)}")
        names = list(self.inputs) if wrt is None else [wrt] if isinstance(wrt, str) else list(wrt)
        bad = [w for w in names if w not in self.inputs]
        if bad:
            raise GraphError(
                f"wrt names {bad} are not inputs of the graph; inputs: {list(self.inputs)}"
            )

        def value_and_grad_fn(values):
            env, residuals = self._run(values, keep_residuals=True)
            out = env[output]
            if not hasattr(out, "shape") or out.shape != () or not jnp.issubdtype(out.dtype, jnp.floating):
                desc = (
                    f"shape {tuple(out.shape)}, dtype {out.dtype}" if hasattr(out, "shape")
                    else type(out).__name__
                )
                raise GraphError(
                    f"value_and_grad needs a scalar floating output; {output!r} has {desc} "
                    "(use backward() with a cotangent for non-scalar outputs)"
                )
            grads = self.backward(env, {output: jnp.ones((), out.dtype)}, residuals=residuals)
            if isinstance(wrt, str):
                return out, grads[wrt]
            return out, {w: grads[w] for w in names}

        return value_and_grad_fn

    # ------------------------------------------------------------------------------------------
    # Drawing
    # ------------------------------------------------------------------------------------------
    def to_dot(self, name: str = "G", *, rankdir: str = "LR", highlight: Iterable[str] = ()) -> str:
        """Graphviz text: inputs as ellipses, nodes as boxes ``name = op``, edges labelled by argument.

        ``highlight``: names drawn filled (e.g. the loss). Render with ``dot -Tsvg``.
        """
        hi = set(highlight)

        def q(s):
            return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'

        lines = [f"digraph {q(name)} {{", f"  rankdir={rankdir};", '  node [fontname="Helvetica"];']
        for i in self.inputs:
            fill = ', style=filled, fillcolor="#dddddd"' if i in hi else ""
            lines.append(f"  {q(i)} [shape=ellipse{fill}];")
        for n in self._order:
            extras = [
                f"{k}={v!r}" for k, v in n.static if n.op.static_defaults.get(k, object()) != v
            ]
            label = f"{n.name} = {n.op.name}" + (f"({', '.join(extras)})" if extras else "")
            fill = ', style=filled, fillcolor="#dddddd"' if n.name in hi else ""
            lines.append(f"  {q(n.name)} [shape=box, label={q(label)}{fill}];")
        for n in self._order:
            for arg, inp in zip(n.op.arg_names, n.inputs):
                lines.append(f"  {q(inp)} -> {q(n.name)} [label={q(arg)}];")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_mermaid(self) -> str:
        """The same drawing as Mermaid text (rendered by GitHub in a ```` ```mermaid ```` block)."""
        ids = {name: f"n{i}" for i, name in enumerate((*self.inputs, *self.order))}

        def esc(s):
            return str(s).replace('"', "#quot;")

        lines = ["flowchart LR"]
        for i in self.inputs:
            lines.append(f'  {ids[i]}(["{esc(i)}"])')
        for n in self._order:
            lines.append(f'  {ids[n.name]}["{esc(n.name)} = {esc(n.op.name)}"]')
        for n in self._order:
            for arg, inp in zip(n.op.arg_names, n.inputs):
                lines.append(f"  {ids[inp]} -->|{esc(arg)}| {ids[n.name]}")
        return "\n".join(lines) + "\n"
