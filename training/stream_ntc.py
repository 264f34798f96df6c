"""The stream graph in channels-last layout (``python -m training.stream_graph`` tries it first).

ONNX Runtime runs a 1-D convolution over ``(batch, channels, time)`` as one small matrix
product per stream (and per channel for a depthwise one), and broadcasts per-channel weights
over rows of ``time`` values: with many streams of 16 frames each, those loops cost several
times the arithmetic. Here every ``(B, C, T)`` tensor of the network is held as its
transpose ``(B, T, C)``, so that

* a pointwise conv is one matrix product ``X @ W^T`` for the whole batch,
* the patchify conv (kernel = stride = 4 rows) is ``Reshape(rows, (B, n, 4 * 64)) @ W'``,
* a depthwise dilated conv is ``b + sum_j w_j * X[:, j d : j d + T]`` (weights along the
  contiguous last axis), a dense one ``sum_j X[:, j d : j d + T] @ W_j^T``,
* an AveragePool window is a 2-D pool with a ``(k, 1)`` kernel, the cumulative-sum window
  mean of the speaker embedder runs along axis 1,

and the ``Transpose`` nodes the original graph has between the two layouts disappear. States
are ``(B, h, C)``. Supported: the networks of ``training.nets``, ``training.affect_net`` and
``training.speaker_embedding`` without a 2-D stem; anything else raises
:class:`NotStreamable` and the command falls back to :func:`training.stream_graph.build`.
"""

from __future__ import annotations

import numpy as np

from .stream_graph import (
    _BIG,
    _ELEMENTWISE,
    NotStreamable,
    _attrs,
    _consts,
    _crop,
    _State,
    _steps_needed,
    _window,
    _window_means,
)

_T = 1  # the time axis of every 3-D tensor here: (B, T, C)


def build_ntc(model):  # noqa: ANN001, ANN201, C901
    """Nodes and states of ``model``'s stream graph in channels-last layout.

    Raises:
        NotStreamable: an operation this layout does not carry (then use ``build``).
    """
    import onnx
    from onnx import helper, numpy_helper

    g = model.graph
    consts = _consts(g)
    if len(g.input) != 1 or len(g.output) != 1:
        raise NotStreamable("the graph must take one input and give one output")
    groups = _window_means(g, consts)
    inside = {j for _, members, _ in groups.values() for j in members}
    users: dict[str, list[int]] = {}
    for i, n in enumerate(g.node):
        for t in n.input:
            users.setdefault(t, []).append(i)

    cur: dict[str, str] = {}  # original tensor -> its name in the new graph
    ntc: set[str] = set()  # original (B, C, T) tensors held as (B, T, C)
    time: dict[str, int] = {}  # original time tensors -> extra leading steps carried
    states: list[_State] = []
    nodes: list = []
    counter = [0]

    def fresh(base: str = "t") -> str:
        counter[0] += 1
        return f"{base}__n{counter[0]}"

    def const(value: np.ndarray) -> str:
        name = fresh("k")
        nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name)))
        return name

    def node(op: str, ins: list[str], out: str | None = None, **kw) -> str:  # noqa: ANN003
        out = out or fresh()
        nodes.append(helper.make_node(op, ins, [out], **kw))
        return out

    pre: dict[str, tuple[int, str]] = {}  # Concat(state, x) -> (state steps, x)

    def sl(x: str, start: int, end: int) -> str:
        if end == _BIG and pre.get(x, (-1, ""))[0] == start:
            return pre[x][1]  # the part after the state: the tensor before the Concat
        return node("Slice", [x, const(np.array([start], np.int64)), const(np.array([end], np.int64)),
                              const(np.array([_T], np.int64))])

    def need(i: int, tensor: str) -> int:
        return _steps_needed(g, consts, groups, inside, i, tensor)

    def produced(x: str, extra: int) -> None:
        time[x] = extra
        want = max((need(i, x) for i in users.get(x, [])), default=0)
        if want <= extra:
            return
        st = _State(x, want - extra, f"state_{len(states)}", ntc=x in ntc)
        states.append(st)
        xc = node("Concat", [st.name, cur.get(x, x)], axis=_T)
        nodes.append(helper.make_node("Slice", [xc, const(np.array([-st.steps], np.int64)), const(np.array([_BIG], np.int64)),
                                                const(np.array([_T], np.int64))], [f"{st.name}_out"]))
        pre[xc] = (st.steps, cur.get(x, x))
        cur[x] = xc
        time[x] = want

    def fit(x: str, h: int) -> str:
        """``x`` (original name) with exactly ``h`` carried steps."""
        e = time[x]
        if e < h:
            raise NotStreamable(f"{x}: {e} steps carried, {h} needed")
        return sl(cur.get(x, x), e - h, _BIG) if e > h else cur.get(x, x)

    def channel_const(c: str) -> str:
        v = consts[c]
        if v.ndim == 3 and v.shape[0] == 1 and v.shape[2] == 1:
            return const(np.ascontiguousarray(v.transpose(0, 2, 1)))
        if v.ndim <= 1 and v.size == 1 or v.ndim == 0:
            return c
        raise NotStreamable(f"constant {c} of shape {v.shape} against a channels-last tensor")

    produced(g.input[0].name, 0)
    for i, n in enumerate(g.node):
        tin = [t for t in n.input if t in time]
        outs: list[tuple[str, int, bool]] = []  # (original output, carried steps, held channels-last)
        if i in inside:
            continue
        if not tin:
            if n.op_type == "Constant" or all(t in consts or not t for t in n.input):
                nodes.append(n)
                continue
            new = onnx.NodeProto()
            new.CopyFrom(n)
            del new.input[:]
            new.input.extend(cur.get(t, t) for t in n.input)
            nodes.append(new)
            continue
        x = n.input[0]
        op = n.op_type
        if i in groups:  # causal window mean: Pad -> CumSum -> Slice[k:] - Slice[:-k]
            h, _, sub_out = groups[i]
            if x not in ntc:
                raise NotStreamable(f"{x}: window mean over a tensor not in (B, C, T) layout")
            xin = fit(x, h)
            pads = const(np.array([0, 1, 0, 0, 0, 0], np.int64))
            c = node("CumSum", [node("Pad", [xin, pads]), const(np.array(_T, np.int64))])
            cur[sub_out] = node("Sub", [sl(c, h + 1, _BIG), sl(c, 0, -(h + 1))])
            outs.append((sub_out, 0, True))
        elif op == "Transpose":
            if list(_attrs(n).get("perm", [])) != [0, 2, 1]:
                raise NotStreamable(f"{n.output[0]}: transpose {list(_attrs(n).get('perm', []))}")
            cur[n.output[0]] = cur.get(x, x)
            outs.append((n.output[0], time[x], x not in ntc))
        elif op == "Conv":
            w = consts.get(n.input[1])
            if w is None or w.ndim != 3 or x not in ntc:
                raise NotStreamable(f"{n.output[0]}: not a 1-D conv over a (B, C, T) tensor")
            w = w.astype(np.float32)
            cout, cin_g, k = w.shape
            group = int(_attrs(n).get("group", 1))
            bias = consts[n.input[2]].astype(np.float32) if len(n.input) > 2 and n.input[2] else None
            kind, h = _window(n, consts)  # type: ignore[misc]
            if kind == "pointwise" and group == 1:
                y = node("MatMul", [cur.get(x, x), const(np.ascontiguousarray(w[:, :, 0].T))])
                e = time[x]
            elif kind == "aligned" and group == 1:
                if time[x]:
                    raise NotStreamable(f"{n.output[0]}: strided conv over carried steps")
                r = node("Reshape", [cur.get(x, x), const(np.array([0, -1, k * cin_g], np.int64))])
                y = node("MatMul", [r, const(np.ascontiguousarray(w.transpose(2, 1, 0).reshape(k * cin_g, cout)))])
                e = 0
            elif kind == "window" and (group == 1 or (group == cout and cin_g == 1)):
                d = int(_attrs(n).get("dilations", [1])[0])
                xin, y = fit(x, h), ""
                for j in range(k):
                    part = sl(xin, j * d, -(h - j * d) if h - j * d else _BIG)
                    if group == 1:
                        term = node("MatMul", [part, const(np.ascontiguousarray(w[:, :, j].T))])
                    else:
                        term = node("Mul", [part, const(np.ascontiguousarray(w[:, 0, j]))])
                    y = node("Add", [y, term]) if y else term
                e = 0
            else:
                raise NotStreamable(f"{n.output[0]}: conv of kind {kind} with {group} groups")
            cur[n.output[0]] = node("Add", [y, const(bias)]) if bias is not None else y
            outs.append((n.output[0], e, True))
        elif op == "AveragePool":
            kind, h = _window(n, consts)  # type: ignore[misc]
            if kind != "window" or x not in ntc:
                raise NotStreamable(f"{n.output[0]}: pooling of kind {kind}")
            u = node("Unsqueeze", [fit(x, h), const(np.array([1], np.int64))])
            p = node("AveragePool", [u], kernel_shape=[h + 1, 1], strides=[1, 1])
            cur[n.output[0]] = node("Squeeze", [p, const(np.array([1], np.int64))])
            outs.append((n.output[0], 0, True))
        elif op == "Slice":
            if x not in ntc:
                raise NotStreamable(f"{n.output[0]}: slice of a tensor not in (B, C, T) layout")
            s = _crop(n, consts)
            if time[x] < s:
                raise NotStreamable(f"{n.output[0]}: crop of {s} with {time[x]} carried")
            cur[n.output[0]] = sl(cur.get(x, x), s, _BIG) if s else cur.get(x, x)
            outs.append((n.output[0], time[x] - s, True))
        elif op in _ELEMENTWISE:
            lays = {t in ntc for t in tin}
            if len(lays) != 1:
                raise NotStreamable(f"{n.output[0]}: operands in both layouts")
            is_ntc = lays.pop()
            low = min(time[t] for t in tin)
            ins = []
            for t in n.input:
                if t in time:
                    ins.append(fit(t, low))
                elif is_ntc and t in consts:
                    ins.append(channel_const(t))
                elif is_ntc and t:
                    raise NotStreamable(f"{n.output[0]}: a computed operand against a channels-last tensor")
                else:
                    ins.append(t)
            new = onnx.NodeProto()
            new.CopyFrom(n)
            del new.input[:]
            new.input.extend(ins)
            nodes.append(new)
            for o in n.output:
                cur[o] = o
            outs.extend((o, low, is_ntc) for o in n.output)
        elif op == "Concat" and all(t in ntc for t in tin) and len(tin) == len(n.input):
            if int(_attrs(n)["axis"]) != 1 or len({time[t] for t in tin}) != 1:
                raise NotStreamable(f"{n.output[0]}: concat along time")
            cur[n.output[0]] = node("Concat", [cur.get(t, t) for t in n.input], axis=2)
            outs.append((n.output[0], time[tin[0]], True))
        else:
            if any(t in ntc or time[t] for t in tin):
                raise NotStreamable(f"{n.output[0]}: {op} over a channels-last tensor or carried steps")
            new = onnx.NodeProto()
            new.CopyFrom(n)
            del new.input[:]
            new.input.extend(cur.get(t, t) for t in n.input)
            nodes.append(new)
            outs.extend((o, 0, False) for o in n.output if op != "Shape")
        for o, e, is_ntc in outs:
            if is_ntc:
                ntc.add(o)
            produced(o, e)
    out_name = g.output[0].name
    if out_name in ntc or time.get(out_name, 0):
        raise NotStreamable("the output is not in the original layout")
    if cur.get(out_name, out_name) != out_name:
        nodes.append(helper.make_node("Identity", [cur[out_name]], [out_name]))
    return nodes, states
