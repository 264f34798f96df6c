"""Export an ensemble of trained checkpoints as one model: the mean of their probabilities.

    python -m training.ensemble --model speech --members run4 wide12 wide13

Each member is a checkpoint kept by ``training.train --keep TAG`` (``training/cache/<model>.<TAG>.pt``,
its run history in the ``.json`` beside it) or a path to such a ``.pt``. Members may differ in
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
    ap.add_argument("--members", nargs="+", required=True, help="checkpoint tags (or .pt paths)")
    ap.add_argument("--out", type=Path, default=None, help="model folder (default: the bundled one)")
    a = ap.parse_args()
    nets, infos = [], []
    for member in a.members:
        net, info = load_member(a.model, member_path(a.model, member))
        nets.append(net)
        infos.append(info)
    model = ProbAverage(nets).eval()
    folder = a.out or REPO / "deeptone_async" / "models" / a.model
    checks = write_model(model, a.model, folder)
    corpora = list(dict.fromkeys(c for i in infos for c in i.get("corpora", [])))
    checks.update(params=n_params(model), channels=[state_width(n.state_dict()) for n in nets],
                  corpora=corpora, manifests=sorted({m for i in infos for m in i.get("manifests", [])}),
                  ensemble=infos, command="python -m training.ensemble --model " + a.model + " --members "
                  + " ".join(a.members))
    (folder / "train_info.json").write_text(json.dumps(checks, indent=1) + "\n")
    print(json.dumps({k: v for k, v in checks.items() if k != "ensemble"}, indent=1), flush=True)


if __name__ == "__main__":
    main()
