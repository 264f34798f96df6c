#!/usr/bin/env bash
# Install everything the tests need and run them, on a fresh machine, non-interactively:
#   1. Debian packages (espeak-ng and sox for speech fixtures,
#      PortAudio and JACK for the microphone tests), when run as root;
#   2. a NEW virtualenv inside the clone (.venv-test, removed and made again on every run),
#      holding only what pyproject.toml declares (the package with its test, mic and server
#      extras) plus the exact local torch wheel for the training tests: a test that imports
#      an undeclared package fails here instead of passing on something installed by hand;
#   3. a JACK dummy server whose "loopback" device stands in for a microphone;
#   4. mypy, ruff and pytest from that virtualenv.
# Extra arguments go to pytest. DEEPTONE_REUSE_VENV=1 keeps an existing .venv-test (a local
# shortcut for developers; CI never sets it).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(espeak-ng sox libportaudio2 jackd2 libsndfile1 chromium chromium-driver)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    echo "jackd2 jackd/tweak_rt_limits boolean false" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "scripts/test.sh: missing Debian packages ${missing[*]} (run as root to install); dependent tests will skip" >&2
  fi
fi

venv=.venv-test
if [ "${DEEPTONE_REUSE_VENV:-}" != 1 ] || [ ! -x "$venv/bin/python" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
fi
py="$PWD/$venv/bin/python"
# The training code's tests need torch; only this exact version (a local CPU wheel here) is
# allowed: a plain `torch` would pull gigabytes of CUDA. Without it those tests skip. It goes
# in first: the test extra's silero-vad (the published Vad graph the tests compare with)
# requires some torch, which this one then satisfies.
"$py" -m pip install -q --disable-pip-version-check torch==2.13.0 onnxscript >/dev/null 2>&1 \
  || echo "scripts/test.sh: torch==2.13.0 not installable here; training tests will skip" >&2
"$py" -m pip install -q --disable-pip-version-check -e '.[test,mic,server]'

started_jack=""
if command -v jackd >/dev/null && ! pgrep -x jackd >/dev/null; then
  JACK_NO_AUDIO_RESERVATION=1 jackd --no-realtime -L 2 -d dummy -r 16000 -p 512 -C 2 -P 2 >/tmp/deeptone-jackd.log 2>&1 &
  started_jack=$!
  trap '[ -n "$started_jack" ] && kill "$started_jack" 2>/dev/null || true' EXIT
  for _ in $(seq 50); do
    "$py" -c "import sounddevice as sd, sys; sys.exit(0 if any(d['name'] == 'loopback' for d in sd.query_devices()) else 1)" 2>/dev/null && break
    sleep 0.2
  done
fi

# the tests' subprocesses (CLI, examples, server) run `python`/`deeptone-async` from PATH
export PATH="$PWD/$venv/bin:$PATH"
export VIRTUAL_ENV="$PWD/$venv"
"$py" -m mypy
"$py" -m ruff check deeptone_async tests examples benchmarks training --select E,F,W,I,B,UP --ignore E501,B905
"$py" -m pytest -q -p no:cacheprovider "$@"
