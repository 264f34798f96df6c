"""Start-up time of the package and the command line, in fresh processes (issue 13).

    python benchmarks/bench_startup.py [--repeats 21] [--source DIR] [--importtime]

Each case runs ``--repeats`` times in a new interpreter (the cases interleaved, so that a
busy moment of the machine spreads over all of them) and the median, min and max wall time
are printed in ms, with the median CPU time (user + system) of the process: on a shared
machine the wall time grows with the load, the CPU time much less.

    python      python -c "pass"                          the interpreter alone
    import      python -c "import deeptone_async"
    engine      python -c "from deeptone_async import Deeptone"
    help        python -m deeptone_async --help
    script      deeptone-async --help                     the console script beside python

``--source DIR`` puts DIR first on PYTHONPATH, to time another checkout's package (e.g. one
exported with ``git archive COMMIT deeptone_async | tar -x -C DIR``). ``--importtime``
then prints the slowest imports of each case under ``python -X importtime``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def cases() -> dict[str, list[str]]:
    py = sys.executable
    script = Path(py).parent / "deeptone-async"
    return {
        "python": [py, "-c", "pass"],
        "import": [py, "-c", "import deeptone_async"],
        "engine": [py, "-c", "from deeptone_async import Deeptone"],
        "help": [py, "-m", "deeptone_async", "--help"],
        "script": [str(script), "--help"],
    }


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) ms of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env, cwd="/")
    wall = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu


def slowest_imports(cmd: list[str], env: dict[str, str], n: int = 8) -> list[str]:
    """The ``n`` imports with the largest cumulative time under ``-X importtime``."""
    if cmd[0] != sys.executable:  # the console script: run its module under importtime instead
        cmd = [sys.executable, "-m", "deeptone_async", *cmd[1:]]
    err = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], check=True, capture_output=True, text=True, env=env, cwd="/").stderr
    rows = []
    for line in err.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = line.split("|")
            rows.append((int(cumulative), name.rstrip()))
    return [f"{us / 1000:7.1f} ms {name}" for us, name in sorted(rows, reverse=True)[:n]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--source", type=Path, help="time the deeptone_async package in this directory")
    parser.add_argument("--importtime", action="store_true", help="also print the slowest imports of each case")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.source:
        env["PYTHONPATH"] = os.pathsep.join([str(args.source.resolve()), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    todo = cases()
    origin = subprocess.run(
        [sys.executable, "-c", "import deeptone_async; print(deeptone_async.__file__)"],
        check=True, capture_output=True, text=True, env=env, cwd="/",
    ).stdout.strip()
    print(f"package: {origin}; {args.repeats} runs of each case, interleaved")
    for cmd in todo.values():  # warm the disk cache and the .pyc files
        timed(cmd, env)
    load = os.getloadavg()
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in todo}
    for _ in range(args.repeats):
        for name, cmd in todo.items():
            times[name].append(timed(cmd, env))
    print(f"load average before the runs: {load[0]:.2f}, after: {os.getloadavg()[0]:.2f}")
    for name, runs in times.items():
        wall = [w for w, _ in runs]
        cpu = statistics.median(c for _, c in runs)
        print(
            f"{name:8s} wall median {statistics.median(wall):5.0f} ms  min {min(wall):5.0f}  max {max(wall):5.0f}"
            f"   cpu median {cpu:5.0f} ms   {' '.join(todo[name][1:])}"
        )
    if args.importtime:
        for name, cmd in todo.items():
            if name != "python":
                print(f"\nslowest imports, {name}:")
                print("\n".join(slowest_imports(cmd, env)))


if __name__ == "__main__":
    main()
