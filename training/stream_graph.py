"""Streaming graphs: a bundled ``logmel`` / ``embedding`` model that carries its convolution
state between calls instead of recomputing its context (issue 21).

``python -m training.stream_graph --folder deeptone_async/models/gender`` reads the folder's
``model.onnx`` and writes ``model_stream.onnx`` beside it by graph surgery, checks it, and sets
``"onnx_stream": "model_stream.onnx"`` in the folder's ``spec.json``; ``--all`` does so for
every bundled ``logmel`` / ``embedding`` model. Rerun it whenever a ``model.onnx`` is
re-exported (``spec.json`` rewritten by training loses the field; the engine also refuses a
stream graph whose recorded ``model.onnx`` hash differs and falls back to the context path).

The surgery: every operation that looks back in time (a ``Conv`` or ``AveragePool`` with a
kernel longer than 1 and stride 1 along time, unpadded in time; the causal window mean of
``training.speaker_embedding``: Pad -> CumSum -> two Slices -> Sub) reads its input ``X``
prefixed with the last ``h`` steps of ``X`` from the previous call: ``Xc = Concat(state, X)``
along time, used by *every* consumer of ``X`` (so the residual's crop ``x[:, :, trim:]``
gives back ``X``), and ``Slice(Xc, last h steps)`` becomes the output ``state_i_out``. A
tensor that already carries enough history (``x * x`` of a carried ``x``) gets no state of
its own. The patchify conv (kernel = stride = 4 rows) needs none: calls are whole frames.
Any other operation that touches a tensor with carried history (a reshape, a softmax over
time, ...) makes the model unsupported; the numerical check below is the final guard.

Two layouts: :mod:`training.stream_ntc` (tried first) holds every ``(B, C, T)`` tensor as
``(B, T, C)`` and writes the convolutions as batched matrix products and multiply-adds, which
ONNX Runtime runs several times faster for many streams of few frames; :func:`build` keeps the
original layout (a 2-D stem, as in SpeechRT, only fits there). A model with fewer than
``MIN_CONTEXT`` context frames is left on the context path (nothing to gain).

Inputs of the stream graph: ``features`` ``(batch, 4 n, 64)`` (the *new* rows only) and
``state_0 .. state_k`` (``(batch, h, C)``, or ``(batch, C, h[, F])`` in the original
layout); outputs: the model's
output ``(batch, n, width)`` and ``state_0_out ..``. The initial states are what the engine
computes at load (:mod:`deeptone_async.conv_state`): the graph run from zero states over
``context_frames`` frames of silence rows, exactly the history today's runner starts with.

Check before writing: random rows fed in random-sized pieces (after the silence start) equal
``model.onnx`` run once on the silence history plus the whole sequence (max abs diff <= 1e-4);
the timing printed is the CPU time of one 16-frame call of each graph for 1 and for 20 streams
batched (one thread, median of 100; the engine batches concurrent streams).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deeptone_async.features import N_MELS, SILENCE_FLOOR, SUBFRAMES

MODELS = Path(__file__).resolve().parent.parent / "deeptone_async" / "models"
STREAM_FILE = "model_stream.onnx"
META_KEY = "deeptone_stream"
TOL = 1e-4
# SpeechRT (1 context frame, a 2-D stem) fits, but its stream graph measured slower than
# recomputing one frame (the stem's states are 4-D copies): 5.5 ms vs 4.5 ms for 20 streams
# x 16 frames, 440 vs 380 us for one (loaded machine)
MIN_CONTEXT = 2
_BIG = 2**62
_TIME = 2  # the time axis of every tensor a window op reads: (B, C, T) or (B, C, T, F)
_ELEMENTWISE = {"Relu", "Add", "Sub", "Mul", "Div", "Cast", "Sqrt", "Sigmoid", "Identity", "Neg",
                "Exp", "Log", "Abs", "Tanh", "Erf", "Pow", "Clip", "LeakyRelu", "Max", "Min"}
_E0_OPS = {"Transpose", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Softmax", "LogSoftmax",
           "ReduceMean", "ReduceSum", "Concat", "Shape", "MatMul"}


class NotStreamable(ValueError):
    """The graph has an operation the surgery cannot carry, or the check failed."""


class NotWorthIt(NotStreamable):
    """The model's context is too short for carried states to pay (not a failure)."""


@dataclass
class _State:
    tensor: str  # the tensor X it carries
    steps: int  # h: steps of X kept
    name: str
    ntc: bool = False  # X is held as (B, T, C) (training.stream_ntc)


def _consts(graph) -> dict[str, np.ndarray]:  # noqa: ANN001
    from onnx import numpy_helper

    out = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    out[n.output[0]] = numpy_helper.to_array(a.t)
    return out


def _attrs(node) -> dict:  # noqa: ANN001
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _window(node, consts: dict[str, np.ndarray]) -> tuple[str, int] | None:  # noqa: ANN001
    """``("window", h)`` for a Conv / AveragePool that looks ``h`` steps back along time,
    ``("aligned", stride)`` for kernel = stride (patchify), ``("pointwise", 0)`` for kernel 1."""
    if node.op_type not in ("Conv", "AveragePool"):
        return None
    a = _attrs(node)
    if "kernel_shape" in a:
        k = int(a["kernel_shape"][0])
    else:
        k = int(consts[node.input[1]].shape[2])
    s = int(a.get("strides", [1])[0])
    d = int(a.get("dilations", [1])[0])
    pads = list(a.get("pads", []))
    rank = len(pads) // 2
    if pads and (pads[0] or pads[rank]):
        raise NotStreamable(f"{node.name or node.output[0]}: padded along time")
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        raise NotStreamable(f"{node.name or node.output[0]}: auto_pad along time")
    if k == 1 and s == 1:
        return ("pointwise", 0)
    if s == 1:
        return ("window", (k - 1) * d)
    if k == s and d == 1:
        return ("aligned", s)
    raise NotStreamable(f"{node.name or node.output[0]}: kernel {k}, stride {s} along time")


def _window_means(graph, consts: dict[str, np.ndarray]) -> dict[int, tuple[int, set[int], str]]:  # noqa: ANN001
    """Causal window means (Pad -> CumSum -> Slice[k:], Slice[:-k] -> Sub): Pad's index ->
    (h = k - 1, the group's other node indices, the Sub's output)."""
    producer = {o: i for i, n in enumerate(graph.node) for o in n.output}
    users: dict[str, list[int]] = {}
    for i, n in enumerate(graph.node):
        for t in n.input:
            users.setdefault(t, []).append(i)
    out: dict[int, tuple[int, set[int], str]] = {}
    for i, n in enumerate(graph.node):
        if n.op_type != "CumSum" or n.input[0] not in producer:
            continue
        pad = producer[n.input[0]]
        if graph.node[pad].op_type != "Pad" or int(consts[n.input[1]].reshape(())) != _TIME:
            continue
        slices = [j for j in users.get(n.output[0], []) if graph.node[j].op_type == "Slice"]
        if len(slices) != 2 or len(users[n.output[0]]) != 2:
            raise NotStreamable(f"{n.output[0]}: cumulative sum not read as a window difference")
        starts = {j: int(consts[graph.node[j].input[1]][0]) for j in slices}
        late = max(slices, key=lambda j: starts[j])
        early = min(slices, key=lambda j: starts[j])
        k = starts[late]
        if starts[early] != 0 or int(consts[graph.node[early].input[2]][0]) != -k:
            raise NotStreamable(f"{n.output[0]}: window slices are not [k:] and [:-k]")
        subs = set(users.get(graph.node[late].output[0], [])) & set(users.get(graph.node[early].output[0], []))
        if len(subs) != 1 or graph.node[next(iter(subs))].op_type != "Sub":
            raise NotStreamable(f"{n.output[0]}: window slices are not subtracted")
        sub = next(iter(subs))
        out[pad] = (k - 1, {i, late, early, sub}, graph.node[sub].output[0])
    return out


def _crop(node, consts: dict[str, np.ndarray]) -> int:  # noqa: ANN001
    """The steps a Slice drops from the start of the time axis (``x[:, :, s:]``)."""
    ins = list(node.input) + [""] * (5 - len(node.input))
    starts, ends = consts[ins[1]].tolist(), consts[ins[2]].tolist()
    axes = consts[ins[3]].tolist() if ins[3] else list(range(len(starts)))
    steps = consts[ins[4]].tolist() if ins[4] else [1] * len(starts)
    if axes != [_TIME] or steps != [1] or ends[0] < _BIG or starts[0] < 0:
        raise NotStreamable(f"{node.output[0]}: a slice of a carried tensor that is not x[:, :, s:]")
    return int(starts[0])


def _is_depthwise(node, consts: dict[str, np.ndarray]) -> bool:  # noqa: ANN001
    """A 1-D depthwise Conv (weight ``(C, 1, k)``, ``group = C``) with constant weights."""
    w = consts.get(node.input[1]) if node.op_type == "Conv" else None
    return (w is not None and w.ndim == 3 and w.shape[1] == 1 and int(_attrs(node).get("group", 1)) == w.shape[0]
            and (len(node.input) < 3 or not node.input[2] or node.input[2] in consts))


def _depthwise_nodes(node, x: str, consts: dict[str, np.ndarray], fresh) -> list:  # noqa: ANN001
    """``node`` (a depthwise dilated 1-D conv of ``x``) as ``b + sum_j w_j * x[:, :, j d : j d + T]``.

    ONNX Runtime runs a depthwise Conv as one small matrix product per (stream, channel);
    with many streams of few frames each that loop costs several times the arithmetic, and
    these elementwise operations run over the whole batch at once.
    """
    from onnx import helper, numpy_helper

    w = consts[node.input[1]].astype(np.float32)
    k, d = w.shape[2], int(_attrs(node).get("dilations", [1])[0])
    h = (k - 1) * d
    out: list = []

    def const(value: np.ndarray) -> str:
        name = fresh("w")
        out.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name)))
        return name

    axes = const(np.array([_TIME], np.int64))
    acc = None
    for j in range(k):
        sl, prod = fresh("t"), fresh("t")
        end = -(h - j * d) if h - j * d else _BIG
        out.append(helper.make_node("Slice", [x, const(np.array([j * d], np.int64)), const(np.array([end], np.int64)), axes], [sl]))
        out.append(helper.make_node("Mul", [sl, const(w[:, 0, j].reshape(1, -1, 1))], [prod]))
        if acc is not None:
            s = fresh("t")
            out.append(helper.make_node("Add", [acc, prod], [s]))
            prod = s
        acc = prod
    bias = consts[node.input[2]].reshape(1, -1, 1).astype(np.float32) if len(node.input) > 2 and node.input[2] else None
    if bias is None:
        out.append(helper.make_node("Identity", [acc], [node.output[0]]))
    else:
        out.append(helper.make_node("Add", [acc, const(bias)], [node.output[0]]))
    return out


def _is_patch(node, src, consts: dict[str, np.ndarray]) -> bool:  # noqa: ANN001
    """The patchify conv (kernel = stride, constant weights) of ``Transpose(y, [0, 2, 1])``."""
    w = consts.get(node.input[1])
    return (src.op_type == "Transpose" and list(_attrs(src).get("perm", [])) == [0, 2, 1] and w is not None
            and w.ndim == 3 and int(_attrs(node).get("group", 1)) == 1
            and (len(node.input) < 3 or not node.input[2] or node.input[2] in consts))


def _patch_nodes(node, y: str, consts: dict[str, np.ndarray], fresh) -> list:  # noqa: ANN001
    """``node`` (kernel = stride = k over ``Transpose(y)``, ``y`` ``(B, k n, Cin)``) as one matrix
    product: ``Reshape(y, (B, n, k Cin)) @ W' + b``, transposed to ``(B, C, n)``. ONNX Runtime
    runs the Conv as one product per stream; this is one product for the whole batch."""
    from onnx import helper, numpy_helper

    w = consts[node.input[1]].astype(np.float32)  # (C, Cin, k)
    c, cin, k = w.shape
    wt = np.ascontiguousarray(w.transpose(2, 1, 0).reshape(k * cin, c))  # [(r Cin + m), c] = w[c, m, r]
    names = [fresh("p") for _ in range(6)]
    out = [
        helper.make_node("Constant", [], [names[0]], value=numpy_helper.from_array(np.array([0, -1, k * cin], np.int64), names[0])),
        helper.make_node("Reshape", [y, names[0]], [names[1]]),
        helper.make_node("Constant", [], [names[2]], value=numpy_helper.from_array(wt, names[2])),
        helper.make_node("MatMul", [names[1], names[2]], [names[3]]),
    ]
    last = names[3]
    if len(node.input) > 2 and node.input[2]:
        b = consts[node.input[2]].astype(np.float32)
        out += [helper.make_node("Constant", [], [names[4]], value=numpy_helper.from_array(b, names[4])),
                helper.make_node("Add", [last, names[4]], [names[5]])]
        last = names[5]
    out.append(helper.make_node("Transpose", [last], [node.output[0]], perm=[0, 2, 1]))
    return out


def _steps_needed(g, consts: dict, groups: dict, inside, i: int, tensor: str) -> int:
    """The leading time steps node ``i`` needs of its input ``tensor`` beyond its own output's:
    a window-mean group's padding, a look-back window's, a Slice's crop; 0 for anything else
    (members of a window-mean group included: the group carries them)."""
    n = g.node[i]
    if i in groups and n.input[0] == tensor:
        return groups[i][0]
    if i in inside:
        return 0
    w = _window(n, consts)
    if w is not None and w[0] == "window" and n.input[0] == tensor:
        return w[1]
    if n.op_type == "Slice" and n.input[0] == tensor:
        return _crop(n, consts)
    return 0


def build(model):  # noqa: ANN001, ANN201
    """The stream graph of ``model`` (an ``onnx.ModelProto``) and its states.

    Raises:
        NotStreamable: an operation the surgery cannot carry.
    """
    import onnx
    from onnx import TensorProto, helper

    g = model.graph
    consts = _consts(g)
    if len(g.input) != 1 or len(g.output) != 1:
        raise NotStreamable("the graph must take one input and give one output")
    groups = _window_means(g, consts)
    inside = {j: pad for pad, (_, members, _) in groups.items() for j in members}
    users: dict[str, list[int]] = {}
    for i, n in enumerate(g.node):
        for t in n.input:
            users.setdefault(t, []).append(i)

    def need(i: int, tensor: str) -> int:
        return _steps_needed(g, consts, groups, inside, i, tensor)

    producer = {o: i for i, n in enumerate(g.node) for o in n.output}
    time: dict[str, int] = {}  # time tensors -> extra leading steps they carry
    rename: dict[str, str] = {}
    states: list[_State] = []
    nodes = []
    counter = [0]

    def fresh(base: str) -> str:
        counter[0] += 1
        return f"{base}__s{counter[0]}"

    def crop_node(x: str, steps: int) -> str:
        out = fresh(x)
        s, e, a = fresh("c"), fresh("c"), fresh("c")
        nodes.extend([
            helper.make_node("Constant", [], [s], value=helper.make_tensor(s, TensorProto.INT64, [1], [steps])),
            helper.make_node("Constant", [], [e], value=helper.make_tensor(e, TensorProto.INT64, [1], [_BIG])),
            helper.make_node("Constant", [], [a], value=helper.make_tensor(a, TensorProto.INT64, [1], [_TIME])),
            helper.make_node("Slice", [x, s, e, a], [out]),
        ])
        return out

    def produced(x: str, extra: int) -> None:
        time[x] = extra
        want = max((need(i, x) for i in users.get(x, [])), default=0)
        if want <= extra:
            return
        st = _State(x, want - extra, f"state_{len(states)}")
        states.append(st)
        xc, s, e, a = fresh(x), fresh("c"), fresh("c"), fresh("c")
        nodes.extend([
            helper.make_node("Concat", [st.name, x], [xc], axis=_TIME),
            helper.make_node("Constant", [], [s], value=helper.make_tensor(s, TensorProto.INT64, [1], [-st.steps])),
            helper.make_node("Constant", [], [e], value=helper.make_tensor(e, TensorProto.INT64, [1], [_BIG])),
            helper.make_node("Constant", [], [a], value=helper.make_tensor(a, TensorProto.INT64, [1], [_TIME])),
            helper.make_node("Slice", [xc, s, e, a], [f"{st.name}_out"]),
        ])
        rename[x] = xc
        time[xc] = want

    produced(g.input[0].name, 0)
    for i, n in enumerate(g.node):
        new = onnx.NodeProto()
        new.CopyFrom(n)
        del new.input[:]
        new.input.extend(rename.get(t, t) for t in n.input)
        tin = [t for t in new.input if t in time]
        out_extra: int | None = None
        if i in inside and i not in groups:
            if n.output[0] == groups[inside[i]][2]:
                out_extra = 0
        elif not tin:
            pass
        elif i in groups or (_window(n, consts) or ("",))[0] == "window":
            h = groups[i][0] if i in groups else _window(n, consts)[1]  # type: ignore[index]
            x = new.input[0]
            if time[x] < h:
                raise NotStreamable(f"{n.output[0]}: {time[x]} steps carried, {h} needed")
            if time[x] > h:
                new.input[0] = crop_node(x, time[x] - h)
            if any(time[t] for t in new.input[1:] if t in time):
                raise NotStreamable(f"{n.output[0]}: time-varying weights")
            out_extra = 0 if i not in groups else None
            if i not in groups and _is_depthwise(n, consts):
                nodes.extend(_depthwise_nodes(n, new.input[0], consts, fresh))
                new = None
        elif n.op_type == "Conv":
            kind, _ = _window(n, consts)  # type: ignore[misc]
            if kind == "aligned" and time[new.input[0]]:
                raise NotStreamable(f"{n.output[0]}: strided conv over carried steps")
            out_extra = time[new.input[0]]
            src = producer.get(n.input[0])
            if kind == "aligned" and src is not None and _is_patch(n, g.node[src], consts):
                nodes.extend(_patch_nodes(n, rename.get(g.node[src].input[0], g.node[src].input[0]), consts, fresh))
                new = None
        elif n.op_type == "Slice" and new.input[0] in time:
            s = _crop(n, consts)
            if time[new.input[0]] < s:
                raise NotStreamable(f"{n.output[0]}: crop of {s} with {time[new.input[0]]} carried")
            out_extra = time[new.input[0]] - s
        elif n.op_type in _ELEMENTWISE:
            low = min(time[t] for t in tin)
            for j, t in enumerate(new.input):
                if t in time and time[t] > low:
                    new.input[j] = crop_node(t, time[t] - low)
            out_extra = low
        elif n.op_type in _E0_OPS:
            if any(time[t] for t in tin):
                raise NotStreamable(f"{n.output[0]}: {n.op_type} over carried steps")
            out_extra = None if n.op_type == "Shape" else 0
        else:
            raise NotStreamable(f"{n.output[0]}: operation {n.op_type} on a time tensor")
        if new is not None:
            nodes.append(new)
        if out_extra is not None:
            for o in n.output:
                produced(o, out_extra)
    out_name = g.output[0].name
    if time.get(out_name, 0):
        raise NotStreamable("the output carries extra steps")
    return nodes, states


def _shapes(model, names: list[str], rows: int) -> dict[str, tuple[tuple[int, ...], int]]:  # noqa: ANN001
    """Shapes and ONNX element types of tensors ``names`` of ``model`` on ``rows`` rows."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for n in names:
        m.graph.output.append(helper.make_tensor_value_info(n, types[n], None))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, rows, N_MELS)).astype(np.float32)
    outs = sess.run(names, {model.graph.input[0].name: x})
    return {n: (o.shape, types[n]) for n, o in zip(names, outs)}


def stream_model(model, source_sha: str, context_frames: int, layout: str = "ntc"):  # noqa: ANN001, ANN201
    """The stream graph of ``model`` as an ``onnx.ModelProto`` (see the module docstring):
    ``layout`` ``"ntc"`` (:mod:`training.stream_ntc`) or ``"nct"`` (:func:`build`)."""
    import onnx
    from onnx import helper

    from .stream_ntc import build_ntc

    nodes, states = build_ntc(model) if layout == "ntc" else build(model)
    shapes = _shapes(model, [s.tensor for s in states], SUBFRAMES * (context_frames + 8))
    g = model.graph
    inputs, outputs = [g.input[0]], [g.output[0]]
    for st in states:
        shape, dtype = shapes[st.tensor]
        dims: list[int | str] = ["batch", *shape[1:]]
        dims[_TIME] = st.steps
        if st.ntc:
            dims = ["batch", st.steps, int(shape[1])]
        inputs.append(helper.make_tensor_value_info(st.name, dtype, dims))
        outputs.append(helper.make_tensor_value_info(f"{st.name}_out", dtype, dims))
    needed = {o.name for o in outputs}
    kept = []
    for n in reversed(nodes):  # drop what no output needs (the original pads of a window mean)
        if any(o in needed for o in n.output):
            kept.append(n)
            needed.update(n.input)
    nodes = kept[::-1]
    used = {t for n in nodes for t in n.input}
    graph = helper.make_graph(nodes, f"{g.name}_stream", inputs, outputs, [i for i in g.initializer if i.name in used])
    out = helper.make_model(graph, opset_imports=list(model.opset_import))
    out.ir_version = model.ir_version
    meta = {"source_sha256": source_sha, "context_frames": context_frames, "layout": layout,
            "states": [{"name": s.name, "steps": s.steps} for s in states]}
    helper.set_model_props(out, {META_KEY: json.dumps(meta)})
    onnx.checker.check_model(out)
    return out


def _session(data: bytes):  # noqa: ANN202
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])


def check(whole: bytes, stream: bytes, context_frames: int, seed: int = 0) -> float:
    """Max abs difference between the stream graph (its engine start, then random-sized
    pieces of 1-40 frames) and ``model.onnx`` once over the silence history plus the same rows."""
    from deeptone_async.conv_state import StreamGraph

    rng = np.random.default_rng(seed)
    n = 300
    rows = (rng.standard_normal((2, SUBFRAMES * n, N_MELS)) * 3 + SILENCE_FLOOR / 2).astype(np.float32)
    sw = _session(whole)
    hist = np.full((2, SUBFRAMES * context_frames, N_MELS), SILENCE_FLOOR, np.float32)
    (ref,) = sw.run(None, {sw.get_inputs()[0].name: np.concatenate([hist, rows], axis=1)})
    sg = StreamGraph(_session(stream), context_frames)
    st = [sg.initial, sg.initial]
    pieces, pos = [], 0
    while pos < n:
        k = min(int(rng.integers(1, 41)), n - pos)
        out, st = sg.run(rows[:, SUBFRAMES * pos : SUBFRAMES * (pos + k)], st)
        pieces.append(out)
        pos += k
    got = np.concatenate(pieces, axis=1)
    if got.shape != ref.shape:
        raise NotStreamable(f"stream output {got.shape} != whole {ref.shape}")
    return float(np.abs(got - ref).max())


def timing(whole: bytes, stream: bytes, context_frames: int, streams: int = 1, frames: int = 16,
           reps: int = 100) -> tuple[float, float]:
    """Median CPU microseconds of one call of ``streams`` streams x ``frames`` frames:
    context path, stream graph (one thread)."""
    from deeptone_async.conv_state import StreamGraph

    sw = _session(whole)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((streams, SUBFRAMES * (context_frames + frames), N_MELS)) + SILENCE_FLOOR / 2).astype(np.float32)
    feed = {sw.get_inputs()[0].name: x}
    sg = StreamGraph(_session(stream), context_frames)
    new = np.ascontiguousarray(x[:, : SUBFRAMES * frames])
    st = [sg.initial] * streams

    def med(f) -> float:  # noqa: ANN001
        ts = []
        for _ in range(reps):
            t = time.process_time()
            f()
            ts.append(time.process_time() - t)
        return 1e6 * float(np.median(ts))

    return med(lambda: sw.run(None, feed)), med(lambda: sg.run(new, st))


def convert(folder: Path) -> str:
    """Write ``folder/model_stream.onnx`` and the spec field, or remove both if the model is
    not streamable. Returns a line for the log.

    Raises:
        NotStreamable: the model cannot be carried (its folder is left on the context path).
    """
    import onnx

    spec_path = folder / "spec.json"
    spec = json.loads(spec_path.read_text())
    target = folder / STREAM_FILE
    try:
        if spec.get("kind") not in ("logmel", "embedding"):
            raise NotStreamable(f"kind {spec.get('kind')!r} is not a log-mel model")
        src = folder / spec.get("onnx", "model.onnx")
        data = src.read_bytes()
        ctx = int(spec.get("context_frames", 0))
        if ctx < MIN_CONTEXT:
            raise NotWorthIt(f"{ctx} context frame(s): recomputing them costs less than carrying states")
        why = []
        for layout in ("ntc", "nct"):  # channels-last first; the plain surgery if it does not fit
            try:
                out = stream_model(onnx.load_from_string(data), hashlib.sha256(data).hexdigest(), ctx, layout)
                blob = out.SerializeToString()
                try:
                    diff = check(data, blob, ctx)
                except Exception as exc:  # onnxruntime's own error types: the graph does not run
                    raise NotStreamable(f"the stream graph does not run: {exc}") from exc
                if not diff <= TOL:
                    raise NotStreamable(f"stream graph differs from model.onnx by {diff:.2e} (> {TOL:g})")
                break
            except NotStreamable as exc:
                why.append(f"{layout}: {exc}")
        else:
            raise NotStreamable("; ".join(why))
    except NotStreamable:
        target.unlink(missing_ok=True)
        if spec.pop("onnx_stream", None) is not None:
            spec_path.write_text(json.dumps(spec, indent=2) + "\n")
        raise
    target.write_bytes(blob)
    if spec.get("onnx_stream") != STREAM_FILE:
        spec["onnx_stream"] = STREAM_FILE
        spec_path.write_text(json.dumps(spec, indent=2) + "\n")
    n_states = len(json.loads(out.metadata_props[0].value)["states"])
    line = f"{folder.name}: {layout}, {n_states} states, max diff {diff:.1e}; 16-frame call, CPU us, {ctx} context frames -> streamed:"
    for streams in (1, 20):
        t_ctx, t_stream = timing(data, blob, ctx, streams)
        line += f" {streams} stream(s) {t_ctx:.0f} -> {t_stream:.0f} ({t_ctx / t_stream:.1f}x);"
    return line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path, action="append", default=[], help="a model folder (repeatable)")
    ap.add_argument("--all", action="store_true", help="every bundled logmel / embedding model")
    args = ap.parse_args(argv)
    folders = list(args.folder)
    if args.all:
        folders += sorted(p for p in MODELS.iterdir() if (p / "spec.json").is_file()
                          and json.loads((p / "spec.json").read_text()).get("kind") in ("logmel", "embedding"))
    if not folders:
        ap.error("give --folder or --all")
    failed = 0
    for f in folders:
        try:
            print(convert(f), flush=True)
        except NotStreamable as exc:
            failed += not isinstance(exc, NotWorthIt)
            print(f"{f.name}: not streamable, stays on the context path: {exc}", flush=True)
    return 1 if failed and not args.all else 0


if __name__ == "__main__":
    from training import stream_graph  # the module training.stream_ntc imports, not __main__

    sys.exit(stream_graph.main())
