"""Export an ensemble of trained checkpoints as one model: the mean of their probabilities.

    python -m training.ensemble --model speech --members run4 wide12 wide13

Each member is a checkpoint kept by ``training.train --keep TAG`` (``training/cache/<model>.<TAG>.pt``,
its run history in the ``.json`` beside it), a path to such a ``.pt``, or an exported model's
``.onnx`` (a single network or an ensemble graph: each of its networks becomes a member; its
history is the ``train_info.json`` beside it), e.g. the bundled model and a retrained candidate::

    python -m training.ensemble --model speech --members deeptone_async/models/speech/model.onnx \
        training/cache/speech-cand/model.onnx --out training/cache/speech-mix
 Members may differ in
width (``--resume`` widens a narrower checkpoint) but must share the blocks, hence the receptive
field. The graph goes into the model folder (``--out`` elsewhere) with the same export checks as
a single network (onnxruntime vs torch, chunked == whole, size, speed) and a ``train_info.json``
whose ``ensemble`` lists every member's training runs. Re-run ``training.evaluate`` and
``training.cards`` afterwards.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from .data import CACHE, REPO
from .nets import CausalTCN, ProbAverage, n_params, state_stem2d, state_width
from .train import MODELS, RUN_KEYS, net_config, write_model


def member_path(model: str, member: str) -> Path:
    p = Path(member)
    return p if p.suffix == ".pt" else CACHE / f"{model}.{member}.pt"


def load_onnx_members(model: str, path: Path) -> tuple[list[CausalTCN], list[dict]]:
    """The networks of the exported graph ``path`` (one, or each member of an ensemble graph),
    each with its training history from the ``train_info.json`` beside it: an ensemble's
    ``ensemble`` entries, or, for an ensemble fine-tuned as one model (``training.train
    --resume-from`` an ensemble graph: ``resumed_ensemble``), each member's history followed by
    that joint run. Their BatchNorms are folded (eval mode)."""
    from .export import ensemble_from_onnx, onnx_members, state_from_onnx

    widths = onnx_members(path)
    info_path = path.parent / "train_info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    keep = (*RUN_KEYS, "previous_runs", "resumed_lr", "resumed_from", "corpora", "manifests")
    run = {k: info[k] for k in keep if k in info and k != "previous_runs"}
    if widths:
        nets = [CausalTCN(len(MODELS[model]["labels"]), w, MODELS[model]["blocks"]).eval() for w in widths]
        ensemble_from_onnx(path, nets)
        if "ensemble" in info:
            hists = list(info["ensemble"])
        elif "resumed_ensemble" in info:
            hists = []
            for k, (w, m) in enumerate(zip(widths, info["resumed_ensemble"])):
                own = {key: v for key, v in m.items() if key not in ("previous_runs", "checkpoint")}
                hists.append({**run, "checkpoint": f"{path} (network {k + 1})", "channels": w,
                              "previous_runs": [*m.get("previous_runs", []), own]})
        else:
            hists = [{"checkpoint": f"{path} (network {k + 1})", "channels": w} for k, w in enumerate(widths)]
        return nets, hists
    info_w = info.get("channels", MODELS[model]["channels"])
    m = net_config(model, int(info_w if isinstance(info_w, int) else MODELS[model]["channels"]),
                   int(info.get("stem2d", MODELS[model].get("stem2d", 0))))
    net = CausalTCN(len(m["labels"]), m["channels"], m["blocks"], stem2d=m.get("stem2d", 0)).eval()
    net.load_state_dict(state_from_onnx(path, net))
    return [net], [{"checkpoint": str(path), **run, "previous_runs": info.get("previous_runs", [])}]


def load_member(model: str, path: Path) -> tuple[CausalTCN, dict]:
    """The network in checkpoint ``path`` and its run history (empty when there is none)."""
    state = torch.load(path)
    m = net_config(model, state_width(state), state_stem2d(state))
    net = CausalTCN(len(m["labels"]), m["channels"], m["blocks"], stem2d=m.get("stem2d", 0))
    net.load_state_dict(state)
    net.eval()
    hist = path.with_suffix(".json")
    info = json.loads(hist.read_text()) if hist.exists() else {}
    keep = (*RUN_KEYS, "previous_runs", "resumed_lr", "corpora", "manifests")
    return net, {"checkpoint": path.name, **{k: info[k] for k in keep if k in info}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=sorted(MODELS))
    ap.add_argument("--members", nargs="+", required=True, help="checkpoint tags, .pt paths or exported .onnx graphs")
    ap.add_argument("--out", type=Path, default=None, help="model folder (default: the bundled one)")
    a = ap.parse_args()
    nets, infos = [], []
    for member in a.members:
        if member.endswith(".onnx"):
            more, hists = load_onnx_members(a.model, Path(member))
            nets += more
            infos += hists
        else:
            net, info = load_member(a.model, member_path(a.model, member))
            nets.append(net)
            infos.append(info)
    model = ProbAverage(nets).eval()
    folder = a.out or REPO / "deeptone_async" / "models" / a.model
    checks = write_model(model, a.model, folder)
    corpora = list(dict.fromkeys(c for i in infos for c in i.get("corpora", [])))
    checks.update(params=n_params(model), channels=[state_width(n.state_dict()) for n in nets],
                  bn_frozen=any(m.endswith(".onnx") for m in a.members),
                  corpora=corpora, manifests=sorted({m for i in infos for m in i.get("manifests", [])}),
                  ensemble=infos, command="python -m training.ensemble --model " + a.model + " --members "
                  + " ".join(a.members))
    (folder / "train_info.json").write_text(json.dumps(checks, indent=1) + "\n")
    print(json.dumps({k: v for k, v in checks.items() if k != "ensemble"}, indent=1), flush=True)


if __name__ == "__main__":
    main()
