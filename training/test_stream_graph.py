"""``training.stream_graph`` on small freshly exported networks of each family:
``python -m pytest training/test_stream_graph.py``.

The stream graph (states carried, random-sized pieces) must equal ``model.onnx`` on the whole
input with the engine's silence history; a 2-D stem is carried by the plain surgery only.
Skipped without torch (the training extra).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the training code needs torch==2.13.0")
# torch.onnx's legacy exporter (used on purpose by training.export) and its constant-folding notes
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.filterwarnings("ignore::UserWarning")]

import onnx  # noqa: E402
import torch  # noqa: E402

from .affect_net import AffectNet  # noqa: E402
from .export import export_onnx  # noqa: E402
from .nets import CausalTCN  # noqa: E402
from .speaker_embedding import Exported, SpeakerNet  # noqa: E402
from .stream_graph import TOL, NotStreamable, check, stream_model  # noqa: E402


def _export(net: torch.nn.Module, path: Path) -> bytes:
    torch.manual_seed(0)
    for p in net.parameters():  # trained-looking weights, not the zero-mean init
        p.data.normal_(0.0, 0.3)
    export_onnx(net, path)
    return path.read_bytes()


NETS = {
    "tcn": lambda: CausalTCN(3, 8, [(3, 1), (3, 2), (2, 1)]),
    "tcn_head": lambda: CausalTCN(2, 8, [(3, 1), (3, 4)], head_hidden=6),
    "affect": lambda: AffectNet(3, channels=8, blocks=[(3, 1), (3, 2)], pool=5, hidden=6),
    "speaker": lambda: Exported(SpeakerNet(4, channels=8, dim=6, blocks=[(3, 1), (3, 2)], pool=5)),
}


@pytest.mark.parametrize("kind", sorted(NETS))
def test_channels_last_stream_graph_equals_the_whole_model(kind: str, tmp_path: Path) -> None:
    net = NETS[kind]().eval()
    data = _export(net, tmp_path / "model.onnx")
    ctx = int(net.context_frames)
    out = stream_model(onnx.load_from_string(data), "x", ctx, "ntc")
    assert check(data, out.SerializeToString(), ctx) <= TOL


def test_a_2d_stem_is_carried_by_the_plain_surgery(tmp_path: Path) -> None:
    net = CausalTCN(3, 8, [(3, 1), (1, 1)], stem2d=4).eval()
    data = _export(net, tmp_path / "model.onnx")
    ctx = int(net.context_frames)
    with pytest.raises(NotStreamable):
        stream_model(onnx.load_from_string(data), "x", ctx, "ntc")
    out = stream_model(onnx.load_from_string(data), "x", ctx, "nct")
    assert check(data, out.SerializeToString(), ctx) <= TOL


def test_a_wrong_stream_graph_fails_the_check(tmp_path: Path) -> None:
    """The check is what stands between a wrong surgery and the bundle: one weight of the
    stream graph moved by 0.05 must show."""
    from onnx import numpy_helper

    net = CausalTCN(3, 8, [(3, 1), (3, 2)]).eval()
    data = _export(net, tmp_path / "model.onnx")
    ctx = int(net.context_frames)
    out = stream_model(onnx.load_from_string(data), "x", ctx, "ntc")
    assert check(data, out.SerializeToString(), ctx) <= TOL
    node = next(n for n in out.graph.node if n.op_type == "Constant" and n.attribute[0].t.data_type == onnx.TensorProto.FLOAT
                and len(n.attribute[0].t.dims) == 2)
    w = numpy_helper.to_array(node.attribute[0].t).copy()
    w[0, 0] += 0.05
    node.attribute[0].t.CopyFrom(numpy_helper.from_array(w, node.output[0]))
    assert check(data, out.SerializeToString(), ctx) > 10 * TOL
