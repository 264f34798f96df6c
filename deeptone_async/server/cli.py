"""``deeptone-async serve`` arguments (no heavy imports here: the extra may be missing)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback by default)")
    parser.add_argument("--port", type=int, default=8765)


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("the server lands with issue 5")
