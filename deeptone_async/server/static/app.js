// The deeptone-async page: the microphone over the /stream WebSocket, and files through
// POST /analyse, each drawn as a timeline with one row per model. Plain browser JavaScript,
// no dependencies. URLs are relative, so the page also works when the app is mounted.
"use strict";

const $ = (id) => document.getElementById(id);
const BASE = new URL(".", location.href);
const LIVE_WINDOW_MS = 20000;
// ?native_rate: capture at the device's rate and let the worklet resample (what browsers
// without 16 kHz AudioContexts get; the tests use it to exercise that path in Chromium)
const NATIVE_RATE = new URLSearchParams(location.search).has("native_rate");
const ROW = 24, LABEL_W = 90, AXIS = 18;
const COLORS = {
  speech: "#2e9e4f", no_speech: "#b8b8b8", silence: "#e6e6e6", music: "#3b6fd8", other: "#9b59b6",
  male: "#2f6db5", female: "#d9487d", unknown: "#f0c419",
  high: "#e8731a", neutral: "#8fa3ad", low: "#2aa7a0",
  happy: "#f2b705", irritated: "#d63a2f", tired: "#7a5c3e",
};
const seen = new Set();

function color(label) {
  if (COLORS[label]) return COLORS[label];
  let h = 0;
  for (const c of label) h = (h * 31 + c.charCodeAt(0)) % 360;
  return `hsl(${h} 55% 55%)`;
}

function chosenModels() {
  return [...document.querySelectorAll("#models input:checked")].map((el) => el.value);
}

function apiKeyHeaders() {
  const key = $("apikey").value.trim();
  return key ? { "X-Api-Key": key } : {};
}

function setStatus(id, text, isError = false) {
  const el = $(id);
  el.textContent = text;
  el.className = isError ? "error" : "muted";
}

function updateLegend() {
  const legend = $("legend");
  legend.replaceChildren();
  for (const label of seen) {
    const chip = document.createElement("span");
    chip.className = "chip";
    chip.style.background = color(label);
    legend.append(chip, label);
  }
}

// rows: [{name, spans: [{start, end, label}]}]; the view covers [t0, t1) ms
function drawTimeline(canvas, rows, t0, t1) {
  if (!rows.length) return;
  canvas.hidden = false;
  const dpr = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = rows.length * ROW + AXIS;
  canvas.style.height = `${height}px`;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  g.clearRect(0, 0, width, height);
  g.font = "12px system-ui, sans-serif";
  g.textBaseline = "middle";
  const scale = (width - LABEL_W) / Math.max(1, t1 - t0);
  const x = (t) => LABEL_W + (t - t0) * scale;
  rows.forEach((row, i) => {
    const y = i * ROW;
    g.fillStyle = "#333";
    g.fillText(row.name, 6, y + ROW / 2);
    for (const s of row.spans) {
      if (s.end <= t0 || s.start >= t1) continue;
      g.fillStyle = color(s.label);
      const a = Math.max(x(s.start), LABEL_W);
      g.fillRect(a, y + 3, Math.max(1, x(Math.min(s.end, t1)) - a), ROW - 6);
    }
  });
  g.fillStyle = "#666";
  const stepS = Math.max(1, Math.ceil((t1 - t0) / 1000 / 10));
  for (let s = Math.ceil(t0 / 1000 / stepS) * stepS; s * 1000 <= t1; s += stepS) {
    const xs = x(s * 1000);
    g.fillRect(xs, rows.length * ROW, 1, 4);
    g.fillText(`${s} s`, xs + 2, rows.length * ROW + AXIS / 2 + 2);
  }
}

// consecutive periods with the same label merged into spans
function addSpan(spans, start, end, label) {
  const last = spans[spans.length - 1];
  if (last && last.label === label && last.end === start) last.end = end;
  else spans.push({ start, end, label });
  seen.add(label);
}

// ---------------------------------------------------------------- the live microphone
const live = { ws: null, ctx: null, media: null, node: null, rows: new Map(), end: 0, period: 256, stopping: false };

function currentRow(model) {
  let tr = document.querySelector(`#current tr[data-model="${model}"]`);
  if (!tr) {
    tr = document.createElement("tr");
    tr.dataset.model = model;
    const name = document.createElement("td");
    name.textContent = model;
    const label = document.createElement("td");
    label.className = "label";
    label.id = `label-${model}`;
    const conf = document.createElement("td");
    conf.className = "muted";
    conf.id = `confidence-${model}`;
    tr.append(name, label, conf);
    $("current").tBodies[0].append(tr);
  }
  return tr;
}

function onResult(channel) {
  const t = channel.timestamp;
  live.end = Math.max(live.end, t + live.period);
  for (const [model, res] of Object.entries(channel.results)) {
    if (!live.rows.has(model)) live.rows.set(model, []);
    const spans = live.rows.get(model);
    addSpan(spans, t, t + live.period, res.result);
    while (spans.length && spans[0].end < live.end - 2 * LIVE_WINDOW_MS) spans.shift();
    currentRow(model);
    const label = $(`label-${model}`);
    label.textContent = res.result;
    label.style.color = color(res.result);
    $(`confidence-${model}`).textContent = res.confidence.toFixed(2);
  }
  drawLive();
  updateLegend();
}

function drawLive() {
  const rows = [...live.rows].map(([name, spans]) => ({ name, spans }));
  const t1 = Math.max(live.end, LIVE_WINDOW_MS);
  drawTimeline($("live"), rows, t1 - LIVE_WINDOW_MS, t1);
}

async function startMic() {
  const models = chosenModels();
  if (!models.length) return setStatus("status", "choose at least one model", true);
  live.period = Number($("period").value);
  live.rows.clear();
  live.end = 0;
  live.stopping = false;
  $("current").tBodies[0].replaceChildren();
  $("mic").disabled = true;
  try {
    setStatus("status", "asking for the microphone…");
    live.media = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    let source;
    try {  // a 16 kHz context: the browser resamples the microphone (Chrome does)
      if (NATIVE_RATE) throw new Error("native rate asked for");
      live.ctx = new AudioContext({ sampleRate: 16000 });
      source = live.ctx.createMediaStreamSource(live.media);
    } catch (e) {  // Firefox refuses other rates than the device's: the worklet resamples
      if (live.ctx) live.ctx.close();
      live.ctx = new AudioContext();
      source = live.ctx.createMediaStreamSource(live.media);
    }
    await live.ctx.audioWorklet.addModule(new URL("static/worklet.js", BASE));
    live.node = new AudioWorkletNode(live.ctx, "pcm-16k", {
      numberOfInputs: 1, numberOfOutputs: 1, channelCount: 1, channelCountMode: "explicit",
    });
    const mute = live.ctx.createGain();  // keeps the node pulled by the graph, silently
    mute.gain.value = 0;
    source.connect(live.node).connect(mute).connect(live.ctx.destination);

    const url = new URL("stream", BASE);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("models", models.join(","));
    url.searchParams.set("output_period", String(live.period));
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    live.ws = ws;
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      if (msg.message_type === "results") onResult(msg.results.channels["0"]);
      else if (msg.message_type === "error") setStatus("status", `server: ${msg.error}`, true);
    };
    ws.onclose = (e) => {
      if (e.code !== 1000 || !live.stopping) {
        if ($("status").className !== "error") setStatus("status", `stream closed (${e.code}${e.reason ? ": " + e.reason : ""})`, e.code !== 1000);
      } else setStatus("status", "stopped");
      cleanup();
    };
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error("could not connect to the stream"));
    });
    ws.onerror = null;
    live.node.port.onmessage = (e) => { if (ws.readyState === WebSocket.OPEN) ws.send(e.data); };
    await live.ctx.resume();
    setStatus("status", `listening (${live.ctx.sampleRate} Hz → 16 kHz)`);
    $("stop").disabled = false;
  } catch (err) {
    setStatus("status", err.message || String(err), true);
    cleanup();
  }
}

function stopMic() {
  live.stopping = true;
  $("stop").disabled = true;
  if (live.node) live.node.port.postMessage("flush");
  // the last audio, then an empty frame: the server sends the final partial period and closes
  setTimeout(() => {
    if (live.ws && live.ws.readyState === WebSocket.OPEN) live.ws.send(new ArrayBuffer(0));
    releaseAudio();
  }, 50);
}

function releaseAudio() {
  if (live.media) live.media.getTracks().forEach((track) => track.stop());
  if (live.ctx && live.ctx.state !== "closed") live.ctx.close();
  live.media = live.ctx = live.node = null;
}

function cleanup() {
  releaseAudio();
  live.ws = null;
  $("mic").disabled = false;
  $("stop").disabled = true;
}

// ---------------------------------------------------------------- a file
async function analyseFile() {
  const file = $("file").files[0];
  if (!file) return setStatus("file-status", "choose a file first", true);
  const models = chosenModels();
  if (!models.length) return setStatus("file-status", "choose at least one model", true);
  const period = Number($("period").value);
  const url = new URL("analyse", BASE);
  url.searchParams.set("models", models.join(","));
  url.searchParams.set("output_period", String(period));
  url.searchParams.set("include_summary", "true");
  const form = new FormData();
  form.append("file", file, file.name);
  $("analyse").disabled = true;
  setStatus("file-status", `analysing ${file.name}…`);
  try {
    const response = await fetch(url, { method: "POST", body: form, headers: apiKeyHeaders() });
    const out = await response.json();
    if (!response.ok) throw new Error(out.error || `HTTP ${response.status}`);
    showFile(out, period);
    setStatus("file-status", `${file.name}: done`);
  } catch (err) {
    setStatus("file-status", err.message || String(err), true);
  } finally {
    $("analyse").disabled = false;
  }
}

function showFile(out, period) {
  const channels = Object.entries(out.channels);
  const rows = [];
  const tbody = $("file-summary").tBodies[0];
  tbody.replaceChildren();
  let end = 0;
  for (const [ch, data] of channels) {
    const prefix = channels.length > 1 ? `ch${ch} ` : "";
    const byModel = new Map();
    for (const item of data.time_series) {
      end = Math.max(end, item.timestamp + period);
      for (const [model, res] of Object.entries(item.results)) {
        if (!byModel.has(model)) byModel.set(model, []);
        addSpan(byModel.get(model), item.timestamp, item.timestamp + period, res.result);
      }
    }
    for (const [model, spans] of byModel) rows.push({ name: prefix + model, spans });
    for (const [model, fractions] of Object.entries(data.summary || {})) {
      const tr = document.createElement("tr");
      tr.dataset.model = model;
      const name = document.createElement("td");
      name.textContent = prefix + model;
      const top = Object.entries(fractions).sort((a, b) => b[1] - a[1]);
      const main = document.createElement("td");
      main.className = "label";
      main.id = `file-label-${ch}-${model}`;
      main.textContent = top[0][0].replace(/_fraction$/, "");
      const rest = document.createElement("td");
      rest.className = "muted";
      rest.textContent = top.filter(([, f]) => f > 0)
        .map(([k, f]) => `${k.replace(/_fraction$/, "")} ${(100 * f).toFixed(0)}%`).join(", ");
      tr.append(name, main, rest);
      tbody.append(tr);
    }
  }
  drawTimeline($("file-timeline"), rows, 0, Math.max(end, 1000));
  updateLegend();
}

// ---------------------------------------------------------------- start
async function init() {
  $("mic").addEventListener("click", startMic);
  $("stop").addEventListener("click", stopMic);
  $("analyse").addEventListener("click", analyseFile);
  try {
    const health = await (await fetch(new URL("health", BASE))).json();
    $("server").textContent = `server ${health.version}: ${health.models.length} models`;
    const box = $("models");
    for (const model of health.models) {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "checkbox";
      input.value = model;
      input.id = `model-${model}`;
      input.checked = model === "vad" || model === "gender";
      label.append(input, ` ${model}`);
      box.append(label);
    }
    document.body.dataset.ready = "true";
  } catch (err) {
    $("server").textContent = `cannot reach the server: ${err.message || err}`;
    $("server").className = "error";
  }
}

window.addEventListener("resize", drawLive);
init();
