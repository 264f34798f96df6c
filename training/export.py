"""ONNX export plus the contract checks every bundled model must pass.

* onnxruntime reproduces torch (max abs diff < 1e-4) on random feature sequences;
* streaming equivalence: the model run once on a long sequence equals the model run on the
  same sequence in pieces of varied size with the last ``context_frames`` frames carried
  (what the engine does);
* speed: one onnxruntime thread, chunks of 64 frames with the context carried: microseconds of
  compute per 64 ms frame (the budget is 64 us = 1000x real time).

``python -m training.export --folder deeptone_async/models/speech`` re-runs the checks on an
exported model.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from deeptone_async.features import N_MELS, SILENCE_FLOOR, SUBFRAMES


def export_onnx(model: torch.nn.Module, path: Path) -> None:
    model.eval()
    ctx = model.context_frames
    x = torch.randn(2, SUBFRAMES * (ctx + 8), N_MELS)
    torch.onnx.export(
        model, (x,), str(path), input_names=["features"], output_names=["probs"],
        dynamic_axes={"features": {0: "batch", 1: "rows"}, "probs": {0: "batch", 1: "frames"}},
        opset_version=17, dynamo=False,
    )


def onnx_members(path: Path) -> list[int]:
    """The widths (channels) of the members of an ensemble graph written by
    :mod:`training.ensemble` (``members.K.*`` weights), or ``[]`` for a single network."""
    import onnx

    g = onnx.load(str(path)).graph
    init = {i.name for i in g.initializer}
    if "members.0.head.0.weight" not in init:
        return []
    convs = [n for n in g.node if n.op_type == "Conv"]
    heads = [i for i, n in enumerate(convs) if n.input[1].startswith("members.")]
    dims = {i.name: list(i.dims) for i in g.initializer}
    starts = [0] + [h + 1 for h in heads[:-1]]
    return [int(dims[convs[s].input[1]][0]) for s in starts]


def ensemble_from_onnx(path: Path, members: list[torch.nn.Module]) -> None:
    """Load the weights of an ensemble graph (:func:`onnx_members`) into its ``members``
    (:class:`training.nets.CausalTCN` of the widths it gives, without 2-D stem), each as
    :func:`state_from_onnx` does (BatchNorm folded: keep it in eval mode when training). The
    members' feature mean / std is the graph's ``members.K.mean`` (the export keeps one copy when
    they are equal: ``members.0.mean``).

    Raises:
        ValueError: the graph's convolutions or widths do not match ``members``.
    """
    import onnx
    from onnx import numpy_helper

    g = onnx.load(str(path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    convs = [n for n in g.node if n.op_type == "Conv"]
    per = len(convs) // max(len(members), 1)
    if per * len(members) != len(convs):
        raise ValueError(f"{path}: {len(convs)} convolutions for {len(members)} members")
    for k, net in enumerate(members):
        mean = init.get(f"members.{k}.mean", init["members.0.mean"])
        inv = init.get(f"members.{k}.inv_std", init["members.0.inv_std"])
        net.load_state_dict(_state_from_convs(convs[k * per : (k + 1) * per], init, net, mean, inv, path))


def state_from_onnx(path: Path, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A state dict for ``model`` (a :class:`training.nets.CausalTCN`, with or without 2-D stem, of
    the exported graph's shape) that computes what the exported graph at ``path`` computes.

    The export folds each BatchNorm into the conv before it; the folded weights go into the
    conv (plus the BatchNorm's bias) and every BatchNorm becomes the identity (mean 0, variance
    1 - eps, scale 1). Training from this state must keep the BatchNorms in eval mode (their
    batch statistics are not in the graph): ``training.train`` does so for an ``.onnx`` start.

    Raises:
        ValueError: the graph's convolutions do not match ``model``'s.
    """
    import onnx
    from onnx import numpy_helper

    g = onnx.load(str(path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    convs = [n for n in g.node if n.op_type == "Conv"]
    return _state_from_convs(convs, init, model, init["mean"], init["inv_std"], path)


def _state_from_convs(convs: list, init: dict[str, np.ndarray], model: torch.nn.Module, mean: np.ndarray,
                      inv_std: np.ndarray, path: Path) -> dict[str, torch.Tensor]:
    state = {k: v.clone() for k, v in model.state_dict().items()}
    names = ["patch"] + [f"blocks.{i}.{c}" for i in range(len(model.blocks)) for c in ("dw", "pw")] + ["head.0"]
    bns = ["bn0"] + [f"blocks.{i}.{b}" for i in range(len(model.blocks)) for b in ("bn1", "bn2")]
    if getattr(model, "stem2d", None) is not None:  # its two convolutions come first in the graph
        names, bns = ["stem2d.c1", "stem2d.c2", *names], ["stem2d.b1", "stem2d.b2", *bns]
    if len(convs) != len(names):
        raise ValueError(f"{path}: {len(convs)} convolutions, the model has {len(names)}")
    for node, name in zip(convs, names):
        w = torch.from_numpy(init[node.input[1]].copy())
        if state[f"{name}.weight"].shape != w.shape:
            raise ValueError(f"{path}: {name} weight {tuple(w.shape)} != {tuple(state[name + '.weight'].shape)}")
        state[f"{name}.weight"] = w
        b = torch.from_numpy(init[node.input[2]].copy()) if len(node.input) > 2 else None
        if name == "head.0":
            state["head.0.bias"] = b if b is not None else torch.zeros_like(state["head.0.bias"])
            continue
        bn = bns[names.index(name)]
        mod = model.get_submodule(bn)
        state[f"{bn}.running_mean"] = torch.zeros_like(state[f"{bn}.running_mean"])
        state[f"{bn}.running_var"] = torch.full_like(state[f"{bn}.running_var"], 1.0 - mod.eps)
        state[f"{bn}.weight"] = torch.ones_like(state[f"{bn}.weight"])
        state[f"{bn}.bias"] = b if b is not None else torch.zeros_like(state[f"{bn}.bias"])
    state["mean"] = torch.from_numpy(mean.copy()).view_as(state["mean"])
    state["inv_std"] = torch.from_numpy(inv_std.copy()).view_as(state["inv_std"])
    return state


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def _rand_feats(rng: np.random.Generator, batch: int, frames: int) -> np.ndarray:
    return (rng.standard_normal((batch, SUBFRAMES * frames, N_MELS)) * 3 - 8).astype(np.float32)


def check_torch_vs_ort(model: torch.nn.Module, path: Path, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    s = session(path)
    worst = 0.0
    for b, n in ((1, 1), (3, 10), (2, 200)):
        x = _rand_feats(rng, b, model.context_frames + n)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        out = s.run(["probs"], {"features": x})[0]
        assert out.shape == (b, n, ref.shape[-1]), out.shape
        worst = max(worst, float(np.abs(out - ref).max()))
    assert worst < 1e-4, f"onnxruntime differs from torch by {worst}"
    return worst


def stream(s: ort.InferenceSession, feats: np.ndarray, ctx: int, pieces: list[int]) -> np.ndarray:
    """Run ``feats`` (4*T, 64) of one stream through the model in pieces of the given frame
    counts, carrying ``ctx`` frames of context (SILENCE_FLOOR before the start), as the engine
    does."""
    hist = np.full((SUBFRAMES * ctx, N_MELS), SILENCE_FLOOR, np.float32)
    outs, pos = [], 0
    for n in pieces:
        chunk = feats[SUBFRAMES * pos : SUBFRAMES * (pos + n)]
        if len(chunk) == 0:
            break
        inp = np.concatenate([hist, chunk])[None]
        outs.append(s.run(["probs"], {"features": inp})[0][0])
        hist = inp[0][len(inp[0]) - SUBFRAMES * ctx :] if ctx else hist
        pos += n
    return np.concatenate(outs)


def check_streaming(path: Path, ctx: int, seed: int = 1) -> float:
    rng = np.random.default_rng(seed)
    s = session(path)
    T = 300
    feats = _rand_feats(rng, 1, T)[0]
    whole = stream(s, feats, ctx, [T])
    worst = 0.0
    for _ in range(3):
        pieces = list(rng.integers(1, 40, size=T))
        part = stream(s, feats, ctx, pieces)
        assert part.shape == whole.shape
        worst = max(worst, float(np.abs(part - whole).max()))
    ones = stream(s, feats, ctx, [1] * T)
    worst = max(worst, float(np.abs(ones - whole).max()))
    assert worst < 1e-5, f"chunked != whole ({worst})"
    return worst


def speed_us_per_frame(path: Path, ctx: int, chunk: int = 64, repeats: int = 200) -> float:
    s = session(path, threads=1)
    x = _rand_feats(np.random.default_rng(2), 1, ctx + chunk)
    for _ in range(20):
        s.run(["probs"], {"features": x})
    t = time.perf_counter()
    for _ in range(repeats):
        s.run(["probs"], {"features": x})
    return (time.perf_counter() - t) / repeats / chunk * 1e6


def check_folder(folder: Path) -> dict:
    spec = json.loads((folder / "spec.json").read_text())
    path = folder / spec["onnx"]
    ctx = spec["context_frames"]
    res = {
        "streaming_max_abs_diff": check_streaming(path, ctx),
        "us_per_frame_1thread_chunk64": speed_us_per_frame(path, ctx),
        "onnx_bytes": path.stat().st_size,
    }
    res["x_realtime"] = 64_000.0 / res["us_per_frame_1thread_chunk64"]
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", required=True, type=Path)
    print(json.dumps(check_folder(ap.parse_args().folder), indent=1))
