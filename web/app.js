// The demo page served at "/": connects to the server that served it, speaks the text box, and shows
// live figures.
//
// Page options (query string): `token=...` is passed on to the WebSocket; `jitter=MS` sets the jitter buffer
// (default 100 ms); `tap=1` records, for the browser tests, the PCM received for every stream and every
// sample the player renders (window.voxwireDemo).

import { connect, retryDelayMs } from "./voxwire.js";

const LLM_PIECE_CHARS = [3, 5, 2, 6, 4, 4];
const LLM_PIECE_INTERVAL_MS = 40;
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 10000;
const BANNER_LINES = 3;

const params = new URLSearchParams(location.search);
const tapMode = params.get("tap") === "1";
const jitterParam = Number(params.get("jitter") ?? NaN);
const jitterMs = Number.isFinite(jitterParam) && jitterParam >= 0 ? jitterParam : 100;
const socketUrl = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/v1/ws`;

const ui = Object.fromEntries(
  [
    "status", "banner", "banner-text", "reconnect", "dismiss", "text", "voice", "speed", "speed-value",
    "speak", "speak-llm", "interrupt", "scope", "meter-fill", "ttfa", "buffered", "underruns", "chunks",
    "server-info", "captions",
  ].map((id) => [id, document.getElementById(id)]),
);

/** Page state, also read by the browser tests. */
const demo = {
  client: null,
  previousClient: null,
  drainingClient: null,
  connecting: false,
  connections: 0,
  drains: 0,
  streams: [],
  interruptFrame: null,
  heard: null,
  caption: { stream: null, index: -1, position: 0 },
  chunks: 0,
  underruns: 0,
};
window.voxwireDemo = demo;
demo.openStream = openStream;

let audioContext = null;
let analyser = null;
let retryAttempt = 0;
let retryTimer = null;

async function connectNow() {
  if (demo.connecting || demo.client) return;
  clearTimeout(retryTimer);
  demo.connecting = true;
  setStatus("connecting", "Connecting…");
  try {
    const client = await connect(socketUrl, {
      token: params.get("token") ?? undefined,
      audioContext: audioContext ?? undefined,
      jitterMs,
      tap: tapMode,
    });
    connected(client);
  } catch (error) {
    connectionLost(`Could not connect: ${error.message}.`);
  } finally {
    demo.connecting = false;
  }
}

function connected(client) {
  demo.previousClient?.close();
  demo.previousClient = null;
  demo.client = client;
  demo.connections++;
  audioContext = client.audioContext;
  if (!analyser) {
    analyser = audioContext.createAnalyser();
    analyser.fftSize = 2048;
  }
  client.output.connect(analyser);
  retryAttempt = 0;
  hideBanner();
  setStatus("connected", "Connected");
  fillVoices(client.voices);
  ui["server-info"].textContent =
    `${client.hello.server} · protocol ${client.hello.protocol} · playing at ${audioContext.sampleRate} Hz`;
  client.addEventListener("close", (event) => {
    if (demo.client !== client) return;
    demo.client = null;
    demo.previousClient = client; // its player plays out what it holds until a new connection replaces it
    connectionLost(`Connection lost (code ${event.detail.code}).`);
  });
  client.addEventListener("error", (event) => showError(event.detail));
  // The server is shutting down: what it is saying plays out; the next reply goes on a new connection
  // (behind a load balancer, to another server).
  client.addEventListener("draining", () => {
    if (demo.client !== client) return;
    demo.client = null;
    demo.drainingClient = client; // left open: the server closes it once its streams have ended
    demo.drains++;
    connectNow();
  });
  client.addEventListener("status", (event) => {
    ui.buffered.textContent = `${Math.round(event.detail.queuedMs)} ms`;
    const rms = event.detail.stream === null ? 0 : event.detail.rms;
    ui["meter-fill"].style.width = `${Math.min(100, rms * 400)}%`;
  });
}

function connectionLost(message) {
  setStatus("disconnected", "Disconnected");
  ui.buffered.textContent = "0 ms";
  ui["meter-fill"].style.width = "0%";
  const delay = retryDelayMs(retryAttempt++, { firstMs: RETRY_FIRST_MS, maxMs: RETRY_MAX_MS });
  showBanner(`${message} Retrying in ${Math.round(delay / 1000)} s.`, { reconnect: true });
  retryTimer = setTimeout(connectNow, delay);
}

function fillVoices(voices) {
  const previous = ui.voice.value;
  ui.voice.replaceChildren(
    ...voices.map((voice) => new Option(`${voice.id} (${voice.language})`, voice.id)),
  );
  if (voices.some((voice) => voice.id === previous)) ui.voice.value = previous;
}

/** Open a stream with the chosen voice and speed (unless `options` say otherwise); it plays after any reply
 * still playing. */
function openStream(options = {}) {
  const stream = demo.client.stream({
    voice: ui.voice.value,
    speed: Number(ui.speed.value),
    words: true,
    ...options,
  });
  const record = { id: stream.id, pcm: [], firstaudio: null, done: null, ended: null, errors: [], stream };
  demo.streams.push(record);
  stream.addEventListener("chunk", (event) => {
    if (tapMode) record.pcm.push(event.detail.pcm);
    ui.chunks.textContent = String(++demo.chunks);
  });
  stream.addEventListener("firstaudio", (event) => {
    record.firstaudio = event.detail;
    ui.ttfa.textContent = `${Math.round(event.detail.ms)} ms`;
  });
  stream.addEventListener("underrun", () => {
    ui.underruns.textContent = String(++demo.underruns);
  });
  stream.addEventListener("error", (event) => {
    record.errors.push(event.detail);
    if (event.detail.code !== "disconnected") showError(event.detail);
  });
  stream.addEventListener("done", (event) => (record.done = event.detail));
  stream.addEventListener("ended", (event) => (record.ended = event.detail));
  return stream;
}

function speak() {
  const text = ui.text.value.trim();
  if (demo.client && text) openStream().text(text, { final: true });
}

/** Feed the text a few characters at a time, as tokens come from a language model. */
function speakAsLlm() {
  const text = ui.text.value.trim();
  if (!demo.client || !text) return;
  const stream = openStream();
  let at = 0;
  let piece = 0;
  const timer = setInterval(() => {
    if (stream.inputClosed) {
      clearInterval(timer);
      return;
    }
    const size = LLM_PIECE_CHARS[piece++ % LLM_PIECE_CHARS.length];
    stream.text(text.slice(at, at + size), { final: at + size >= text.length });
    at += size;
  }, LLM_PIECE_INTERVAL_MS);
}

/** Silence everything, including what a lost connection had received and is still playing. */
function interrupt() {
  if (!audioContext) return;
  demo.interruptFrame = Math.round(audioContext.currentTime * audioContext.sampleRate);
  demo.heard = null;
  const clients = [demo.client, demo.previousClient, demo.drainingClient].filter(Boolean);
  Promise.all(clients.map((client) => client.cancelAll())).then((results) => {
    demo.heard = results.flat().filter((heard) => heard && heard.heard !== null);
    const shown = document.getElementById("heard");
    shown.textContent = demo.heard.length ? `Heard: “${demo.heard.map((h) => h.heard).join(" ")}”` : "";
    shown.hidden = !demo.heard.length;
  });
}

/** The stream the listener hears now: the oldest one playing whose playback has not ended. */
function playingStream() {
  return demo.streams.find((record) => record.firstaudio !== null && record.ended === null)?.stream ?? null;
}

const captions = { stream: null, spans: [], index: -1 };

/** Live captions: the playing stream's words as they are timed, the one at the playhead highlighted (by
 * the word timings and the audio clock, never by what has merely arrived). The last ones stay shown. */
function renderCaptions() {
  const stream = playingStream();
  if (!stream) return;
  if (stream !== captions.stream) {
    Object.assign(captions, { stream, spans: [], index: -1 });
    ui.captions.replaceChildren();
  }
  const words = stream.words;
  while (captions.spans.length < words.length) {
    const span = document.createElement("span");
    span.textContent = words[captions.spans.length].text;
    ui.captions.append(span, " ");
    captions.spans.push(span);
  }
  const position = stream.position();
  let index = -1;
  while (index + 1 < words.length && words[index + 1].start <= position) index++;
  if (index !== captions.index) {
    captions.spans.forEach((span, i) => {
      span.className = i < index ? "said" : i === index ? "now" : "";
    });
    captions.index = index;
  }
  demo.caption = { stream: stream.id, index, position };
}

function setStatus(state, label) {
  ui.status.dataset.state = state;
  ui.status.textContent = label;
  for (const id of ["speak", "speak-llm", "voice"]) ui[id].disabled = state !== "connected";
  ui.interrupt.disabled = audioContext === null;
}

/** Add an error to the banner, which shows the latest few. */
function showError({ code, message }) {
  const shown = ui.banner.hidden ? [] : [...ui["banner-text"].children].map((line) => line.textContent);
  const reconnect = !ui.banner.hidden && !ui.reconnect.hidden;
  showBanner([...shown.slice(1 - BANNER_LINES), `${message} (${code})`], { reconnect });
}

/** Show `text` (a string, or a list of lines) in the banner, with or without the Reconnect button. */
function showBanner(text, { reconnect }) {
  const lines = [text].flat().map((line) => {
    const element = document.createElement("div");
    element.textContent = line;
    return element;
  });
  ui["banner-text"].replaceChildren(...lines);
  ui.reconnect.hidden = !reconnect;
  ui.banner.hidden = false;
}

function hideBanner() {
  ui.banner.hidden = true;
}

function drawScope() {
  const canvas = ui.scope;
  const ratio = window.devicePixelRatio || 1;
  const width = Math.round(canvas.clientWidth * ratio);
  const height = Math.round(canvas.clientHeight * ratio);
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, width, height);
  g.strokeStyle = "rgba(255, 255, 255, 0.12)";
  g.lineWidth = ratio;
  g.beginPath();
  g.moveTo(0, height / 2);
  g.lineTo(width, height / 2);
  g.stroke();
  if (analyser) {
    const wave = new Float32Array(analyser.fftSize);
    analyser.getFloatTimeDomainData(wave);
    g.strokeStyle = "#5eead4";
    g.lineWidth = 2 * ratio;
    g.beginPath();
    for (let i = 0; i < wave.length; i++) {
      const x = (i / (wave.length - 1)) * width;
      const y = height / 2 - Math.max(-1, Math.min(1, wave[i] * 3)) * (height / 2 - ratio);
      if (i === 0) g.moveTo(x, y);
      else g.lineTo(x, y);
    }
    g.stroke();
  }
  renderCaptions();
  requestAnimationFrame(drawScope);
}

ui.speed.addEventListener("input", () => {
  ui["speed-value"].textContent = `${Number(ui.speed.value).toFixed(2)}×`;
});
ui.speak.addEventListener("click", speak);
ui["speak-llm"].addEventListener("click", speakAsLlm);
ui.interrupt.addEventListener("click", interrupt);
ui.reconnect.addEventListener("click", connectNow);
ui.dismiss.addEventListener("click", hideBanner);

requestAnimationFrame(drawScope);
connectNow();
