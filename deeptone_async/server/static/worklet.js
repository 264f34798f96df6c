// AudioWorklet: the microphone's first channel as 16 kHz 16-bit little-endian PCM, posted to
// the page in 100 ms messages (3,200 bytes), which the page sends over the /stream WebSocket.
// When the AudioContext already runs at 16 kHz (Chrome resamples the microphone itself) the
// samples are only converted; otherwise they are low-passed (a moving average over one
// output sample's span) and linearly interpolated to 16 kHz.
const TARGET_RATE = 16000;
const CHUNK = 1600;

class Pcm16k extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / TARGET_RATE;   // input samples per output sample
    this.width = Math.max(1, Math.round(this.step));
    this.ring = new Float32Array(this.width);
    this.ringSum = 0;
    this.ringPos = 0;
    this.prev = 0;                          // the previous filtered input sample
    this.pos = 0;                           // next output position, in input samples from this block's start
    this.out = new Int16Array(CHUNK);
    this.n = 0;
    this.port.onmessage = (e) => { if (e.data === "flush") this.flush(); };
  }

  push(x) {
    const v = Math.max(-1, Math.min(1, x));
    this.out[this.n++] = v < 0 ? v * 32768 : v * 32767;
    if (this.n === CHUNK) this.flush();
  }

  flush() {
    if (this.n === 0) return;
    const buf = this.out.slice(0, this.n).buffer;
    this.port.postMessage(buf, [buf]);
    this.n = 0;
  }

  process(inputs, outputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    if (this.step === 1) {
      for (let i = 0; i < input.length; i++) this.push(input[i]);
      return true;
    }
    for (let i = 0; i < input.length; i++) {
      this.ringSum += input[i] - this.ring[this.ringPos];
      this.ring[this.ringPos] = input[i];
      this.ringPos = (this.ringPos + 1) % this.width;
      const cur = this.ringSum / this.width;
      while (this.pos <= i) {              // an output sample falls between i-1 and i
        const frac = this.pos - (i - 1);
        this.push(this.prev + (cur - this.prev) * frac);
        this.pos += this.step;
      }
      this.prev = cur;
    }
    this.pos -= input.length;
    return true;
  }
}

registerProcessor("pcm-16k", Pcm16k);
