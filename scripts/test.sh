#!/usr/bin/env bash
# Install everything the tests need and run them: Debian packages (espeak-ng and sox for
# speech fixtures, PortAudio and JACK for the microphone tests), the package with its test
# extras, then a JACK dummy server whose "loopback" device stands in for a microphone,
# then mypy and pytest. Non-interactive; safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(espeak-ng sox libportaudio2 jackd2 libsndfile1)
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

python3 -m pip install -q --disable-pip-version-check -e '.[test,mic,server]'
# The training code's tests need torch; only this exact version (a local CPU wheel here) is
# allowed: a plain `torch` would pull gigabytes of CUDA. Without it those tests skip.
python3 -m pip install -q --disable-pip-version-check torch==2.13.0 onnxscript >/dev/null 2>&1 \
  || echo "scripts/test.sh: torch==2.13.0 not installable here; training tests will skip" >&2

started_jack=""
if command -v jackd >/dev/null && ! pgrep -x jackd >/dev/null; then
  JACK_NO_AUDIO_RESERVATION=1 jackd --no-realtime -L 2 -d dummy -r 16000 -p 512 -C 2 -P 2 >/tmp/deeptone-jackd.log 2>&1 &
  started_jack=$!
  trap '[ -n "$started_jack" ] && kill "$started_jack" 2>/dev/null || true' EXIT
  for _ in $(seq 50); do
    python3 -c "import sounddevice as sd, sys; sys.exit(0 if any(d['name'] == 'loopback' for d in sd.query_devices()) else 1)" 2>/dev/null && break
    sleep 0.2
  done
fi

python3 -m mypy
python3 -m ruff check deeptone_async tests examples benchmarks training --select E,F,W,I,B,UP --ignore E501,B905
python3 -m pytest -q -p no:cacheprovider "$@"
