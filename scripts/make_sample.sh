#!/usr/bin/env bash
# Rebuild deeptone_async/data/sample.ogg, the demo sample: two synthetic voices (espeak-ng),
# plucked-string notes, pink noise and pauses, all generated here (no recorded audio).
# Needs: espeak-ng, sox (Debian packages) and the package's Python dependencies.
set -euo pipefail
out="$(cd "$(dirname "$0")/.." && pwd)/deeptone_async/data/sample.ogg"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
espeak-ng -v en+f3 -s 150 --stdout "Welcome to deeptone async. This sample is generated, so you can try the engine without any data." | sox -t wav - -r 16000 -c 1 -b 16 f.wav
espeak-ng -v en+m3 -s 140 --stdout "A second voice speaks now, a little lower and a little slower." | sox -t wav - -r 16000 -c 1 -b 16 m.wav
sox -n -r 16000 -c 1 -b 16 sil.wav trim 0 1.0
sox -n -r 16000 -c 1 -b 16 music.wav synth 0.4 pluck C4 synth 0.4 pluck E4 : synth 0.4 pluck G4 : synth 0.4 pluck C5 : synth 0.4 pluck E4 : synth 0.4 pluck G4 : synth 0.4 pluck C5 : synth 0.4 pluck G4 gain -6
sox -n -r 16000 -c 1 -b 16 noise.wav synth 2.0 pinknoise gain -24
sox f.wav sil.wav m.wav sil.wav music.wav sil.wav noise.wav sil.wav demo.wav
python3 -c "import soundfile as sf, sys; d, sr = sf.read('demo.wav'); sf.write(sys.argv[1], d, sr, format='OGG', subtype='OPUS')" "$out"
echo "wrote $out"
