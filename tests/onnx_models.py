"""Tiny ONNX models built in code, to test registering one's own models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from deeptone_async.features import N_MELS, SUBFRAMES


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def constant_model(path: Path, probs: list[float]) -> Path:
    """A 'logmel' model (no context) that says ``probs`` for every frame."""
    k = len(probs)
    nodes = [
        # (B, 4n, 64) -> (B, n, 256) -> mean -> (B, n, 1) -> * 0 + probs -> (B, n, k)
        helper.make_node("Reshape", ["features", "shape"], ["framed"]),
        helper.make_node("ReduceMean", ["framed", "axes"], ["mean"], keepdims=1),
        helper.make_node("Mul", ["mean", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "probs_const"], ["probs"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([0, -1, SUBFRAMES * N_MELS], np.int64), "shape"),
        numpy_helper.from_array(np.array([2], np.int64), "axes"),
        numpy_helper.from_array(np.zeros((1, 1, 1), np.float32), "zero"),
        numpy_helper.from_array(np.array(probs, np.float32).reshape(1, 1, k), "probs_const"),
    ]
    graph = helper.make_graph(
        nodes,
        "constant",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["B", "T", N_MELS])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["B", "N", k])],
        inits,
    )
    return _save(graph, path)


def causal_conv_model(path: Path, context_frames: int, seed: int = 0) -> Path:
    """A causal, valid 'logmel' model: one strided convolution over (context+1) frames, then a sigmoid."""
    rng = np.random.default_rng(seed)
    width = SUBFRAMES * (context_frames + 1)
    weight = (rng.standard_normal((1, N_MELS, width)) / (N_MELS * width)).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["features"], ["chan_first"], perm=[0, 2, 1]),  # (B, 64, T)
        helper.make_node("Conv", ["chan_first", "w", "b"], ["logit"], kernel_shape=[width], strides=[SUBFRAMES]),
        helper.make_node("Sigmoid", ["logit"], ["p"]),  # (B, 1, n)
        helper.make_node("Sub", ["one", "p"], ["q"]),
        helper.make_node("Concat", ["p", "q"], ["pq"], axis=1),  # (B, 2, n)
        helper.make_node("Transpose", ["pq"], ["probs"], perm=[0, 2, 1]),  # (B, n, 2)
    ]
    inits = [
        numpy_helper.from_array(weight, "w"),
        numpy_helper.from_array(np.array([0.5], np.float32), "b"),
        numpy_helper.from_array(np.ones((1, 1, 1), np.float32), "one"),
    ]
    graph = helper.make_graph(
        nodes,
        "causal_conv",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["B", "T", N_MELS])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["B", "N", 2])],
        inits,
    )
    return _save(graph, path)
