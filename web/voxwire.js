// voxwire browser client: speaks protocol v1 over one WebSocket and plays the streams it gets back,
// gaplessly, through one AudioWorklet. No build step: import it as an ES module.
//
//   const client = await connect("ws://localhost:8000/v1/ws");
//   const stream = client.stream({ voice: "joe" });
//   stream.addEventListener("firstaudio", (e) => console.log(`first audio after ${e.detail.ms} ms`));
//   stream.text("Hello there. ", { final: true });
//
// Design notes (why one worklet, how rates and queues work): docs/web.md.

import { decode, encode } from "./vendor/msgpack.mjs";

const WORKLET_URL = new URL("./voxwire-worklet.js", import.meta.url);
const STATUS_INTERVAL_S = 0.05;
/** A cancelled stream fades to silence over this long instead of stopping mid-waveform (a click). */
const FADE_MS = 20;
const TAP_BATCH_FRAMES = 2048;

/**
 * Open a connection and wait for the server's `hello`.
 * @param {string} url WebSocket URL, e.g. "ws://host:8000/v1/ws".
 * @param {{token?: string, audioContext?: AudioContext, jitterMs?: number, tap?: boolean}} [options]
 *   token: sent as `?token=`; audioContext: play through this context (by default one is made at a rate
 *   the server offers); jitterMs: audio a stream holds before it starts or resumes (default 100);
 *   tap: record what the player renders (tests).
 * @returns {Promise<VoxwireClient>}
 */
export async function connect(url, { token, audioContext, jitterMs = 100, tap = false } = {}) {
  const socket = new WebSocket(withToken(url, token));
  socket.binaryType = "arraybuffer";
  const { hello, early } = await receiveHello(socket);
  const context = audioContext ?? createContext(hello.sample_rates);
  const player = await Player.create(context, { jitterMs, tap });
  return new VoxwireClient(socket, hello, player, early);
}

function withToken(url, token) {
  if (!token) return url;
  const parsed = new URL(url);
  parsed.searchParams.set("token", token);
  return parsed.toString();
}

/** The first frame, which must be `hello`, and the messages that come after it before the client listens. */
function receiveHello(socket) {
  return new Promise((resolve, reject) => {
    const early = [];
    let hello = null;
    socket.onmessage = (event) => {
      if (hello) {
        early.push(event.data);
        return;
      }
      let frame;
      try {
        frame = decode(new Uint8Array(event.data));
      } catch (error) {
        socket.close(1002, "undecodable frame");
        reject(new VoxwireError("bad_frame", `undecodable frame from the server: ${error.message}`));
        return;
      }
      if (frame.type === "hello" && frame.protocol === 1) {
        hello = frame;
        resolve({ hello, early });
      } else if (frame.type === "error") {
        reject(new VoxwireError(frame.code, frame.message)); // e.g. overloaded: the server closes next
      } else {
        socket.close(1002, "expected hello");
        reject(new VoxwireError("bad_hello", `expected a protocol 1 hello first, got ${frame.type}`));
      }
    };
    socket.onclose = (event) => {
      if (!hello) reject(new VoxwireError("connect_failed", closeMessage(event)));
    };
  });
}

function closeMessage(event) {
  const why = event.reason ? `: ${event.reason}` : "";
  return `connection closed (code ${event.code}${why})`;
}

/** An AudioContext at a rate the server offers, so that no resampling is needed in the browser. */
function createContext(rates) {
  const context = new AudioContext({ latencyHint: "interactive" });
  if (rates.includes(context.sampleRate)) return context;
  const below = rates.filter((rate) => rate <= context.sampleRate);
  const sampleRate = below.length ? Math.max(...below) : Math.min(...rates);
  context.close();
  return new AudioContext({ latencyHint: "interactive", sampleRate });
}

/** An error with the protocol's (or the client's own) error code. */
export class VoxwireError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "VoxwireError";
    this.code = code;
  }
}

/** The AudioWorklet player node, its output gain and (for tests) the tap between them. */
class Player {
  static async create(context, { jitterMs, tap }) {
    await context.audioWorklet.addModule(WORKLET_URL);
    return new Player(context, jitterMs, tap);
  }

  constructor(context, jitterMs, withTap) {
    this.context = context;
    this.node = new AudioWorkletNode(context, "voxwire-player", {
      numberOfInputs: 0,
      outputChannelCount: [1],
      processorOptions: {
        jitterFrames: Math.round((jitterMs / 1000) * context.sampleRate),
        statusFrames: Math.round(STATUS_INTERVAL_S * context.sampleRate),
        fadeFrames: Math.round((FADE_MS / 1000) * context.sampleRate),
      },
    });
    this.output = context.createGain();
    this.tap = withTap ? new Tap(context) : null;
    if (this.tap) this.node.connect(this.tap.node).connect(this.output);
    else this.node.connect(this.output);
    this.output.connect(context.destination);
    this.onmessage = null;
    this.node.port.onmessage = (event) => this.onmessage(event.data);
  }

  send(message, transfer = []) {
    this.node.port.postMessage(message, transfer);
  }

  close() {
    this.node.port.onmessage = null;
    this.node.disconnect();
    this.tap?.node.disconnect();
    this.output.disconnect();
  }
}

/** Records every sample the player renders, on the audio clock (frame numbers of the AudioContext). */
class Tap {
  constructor(context) {
    this.node = new AudioWorkletNode(context, "voxwire-tap", {
      outputChannelCount: [1],
      channelCount: 1,
      channelCountMode: "explicit",
      processorOptions: { batchFrames: TAP_BATCH_FRAMES },
    });
    this.batches = [];
    this.node.port.onmessage = (event) => this.batches.push(event.data);
  }

  /**
   * Frames recorded so far: `{frame, samples, gaps}`, where `frame` is the context frame of `samples[0]`.
   * Chromium's frame clock can jump (seen once, just after start-up): frames it skipped rendered nothing,
   * are zeros in `samples`, and are listed in `gaps` as [from, to) frame ranges.
   */
  read() {
    const first = this.batches.length ? this.batches[0].frame : 0;
    const samples = new Float32Array(this.endFrame - first);
    const gaps = [];
    let expected = first;
    for (const batch of this.batches) {
      if (batch.frame !== expected) gaps.push([expected, batch.frame]);
      samples.set(batch.samples, batch.frame - first);
      expected = batch.frame + batch.samples.length;
    }
    return { frame: first, samples, gaps };
  }

  /** The context frame just past the last one recorded. */
  get endFrame() {
    const last = this.batches[this.batches.length - 1];
    return last ? last.frame + last.samples.length : 0;
  }
}

/**
 * A wait before retrying after an `overloaded` refusal or a lost connection: `attempt` 0, 1, 2, ... doubles
 * from `firstMs` up to `maxMs`, times a random factor from 0.5 to 1.5, so that many clients do not come
 * back at the same moment.
 */
export function retryDelayMs(attempt, { firstMs = 500, maxMs = 10000 } = {}) {
  return Math.min(firstMs * 2 ** attempt, maxMs) * (0.5 + Math.random());
}

/**
 * One connection. Events: `close` ({code, reason}), `error` ({code, message}: errors not tied to a stream),
 * `status` ({stream, rms, bufferedMs, queuedMs}: about 20 times a second while something plays),
 * `draining` ({graceMs}: the server is shutting down; its streams in flight go on, but new streams belong
 * on a new connection: `stream()` throws `draining` from now on).
 */
export class VoxwireClient extends EventTarget {
  constructor(socket, hello, player, early) {
    super();
    this.hello = hello;
    this.voices = hello.voices;
    this.audioContext = player.context;
    /** GainNode all audio goes through on its way to the speakers: connect an AnalyserNode here. */
    this.output = player.output;
    /** Present when connected with `tap: true`. */
    this.tap = player.tap;
    this.stats = { chunks: 0, underruns: 0 };
    this.connected = true;
    /** Set when the server sent `draining`: open new streams on a new connection. */
    this.draining = false;
    this.socket = socket;
    this.player = player;
    this.streams = new Map();
    this.nextId = 1;
    socket.onmessage = (event) => this.receiveBytes(event.data);
    socket.onclose = (event) => this.closed(event);
    player.onmessage = (message) => this.fromPlayer(message);
    for (const data of early) this.receiveBytes(data);
    if (socket.readyState === WebSocket.CLOSED) this.closed({ code: 1006, reason: "" });
  }

  /**
   * Open a stream. It plays after the streams opened before it (call `cancelAll()` first to barge in).
   * @param {{voice?: string, speed?: number, sampleRate?: number}} [options] sampleRate defaults to the
   *   AudioContext's, which needs no resampling; another rate is resampled linearly to the context's.
   * @returns {VoxwireStream}
   */
  stream({ voice, speed, sampleRate, words } = {}) {
    if (!this.connected) throw new VoxwireError("disconnected", "voxwire: not connected");
    if (this.draining) throw new VoxwireError("draining", "voxwire: the server is draining; connect again");
    if (this.audioContext.state === "suspended") this.audioContext.resume();
    const id = `s${this.nextId++}`;
    const stream = new VoxwireStream(this, id);
    this.streams.set(id, stream);
    this.player.send({ type: "open", stream: id });
    this.send({
      type: "start",
      stream: id,
      voice,
      speed,
      sample_rate: sampleRate ?? this.audioContext.sampleRate,
      words: words || undefined,
    });
    return stream;
  }

  /** Interrupt: silence and cancel every stream of this connection; resolves with each one's heard text. */
  cancelAll() {
    return Promise.all([...this.streams.values()].map((stream) => stream.cancel()));
  }

  /** Close the connection and take the player out of the audio graph (the AudioContext stays open). */
  close() {
    this.socket.close(1000);
    this.player.close();
  }

  send(frame) {
    this.socket.send(encode(frame, { ignoreUndefined: true }));
  }

  receiveBytes(data) {
    let frame;
    try {
      frame = decode(new Uint8Array(data));
    } catch (error) {
      const message = `undecodable frame from the server: ${error.message}`;
      this.emit("error", { code: "bad_frame", message });
      return;
    }
    this.receive(frame);
  }

  receive(frame) {
    const stream = this.streams.get(frame.stream);
    switch (frame.type) {
      case "chunk":
        stream?.receiveChunk(frame);
        break;
      case "done":
        stream?.receiveDone(frame);
        break;
      case "error":
        if (stream) stream.receiveError(frame.code, frame.message);
        else this.emit("error", { code: frame.code, message: frame.message });
        break;
      case "draining":
        this.draining = true;
        this.emit("draining", { graceMs: frame.grace_ms ?? null });
        break;
      default:
        // A frame type this client does not know (a newer server's): ignored, as the protocol asks.
        break;
    }
  }

  fromPlayer(message) {
    const rate = this.audioContext.sampleRate;
    if (message.type === "status") {
      const bufferedMs = (message.buffered / rate) * 1000;
      const queuedMs = (message.queued / rate) * 1000;
      this.emit("status", { stream: message.stream, rms: message.rms, bufferedMs, queuedMs });
      this.streams.get(message.stream)?.emit("level", { rms: message.rms });
      return;
    }
    const stream = this.streams.get(message.stream);
    if (!stream) return;
    if (message.type === "underrun") this.stats.underruns++;
    stream.fromPlayer(message);
  }

  closed(event) {
    if (!this.connected) return;
    this.connected = false;
    for (const stream of this.streams.values()) stream.disconnected(closeMessage(event));
    this.emit("close", { code: event.code, reason: event.reason });
  }

  forget(stream) {
    this.streams.delete(stream.id);
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/**
 * One utterance. Events: `firstaudio` ({ms: from the first text() to the first sample played, receivedMs: to
 * the first chunk received}), `chunk` ({seq, offset, sampleRate, pcm: Int16Array}), `level` ({rms}),
 * `underrun` ({count}), `done` (the server's done: {reason, chunks, samples, ttfa_ms, heard, heardChars}),
 * `words` ({words: [{text, start, end, startChar, endChar}]}: word timings, for a stream opened with
 * `words: true`; samples of the stream, characters of the text sent), `error` ({code, message}), `ended`
 * ({cancelled}: its last sample has played, or it was cancelled).
 */
export class VoxwireStream extends EventTarget {
  constructor(client, id) {
    super();
    this.client = client;
    this.id = id;
    this.chunks = 0;
    this.samples = 0;
    this.underruns = 0;
    /** Player events on the audio clock: [{event: started|underrun|resumed|ended|cancelled, frame}]. */
    this.playback = [];
    this.firstTextAt = null;
    this.firstChunkAt = null;
    this.inputClosed = false;
    this.cancelled = false;
    this.serverDone = false;
    this.failed = false;
    this.playerDone = false;
    this.nextSeq = 0;
    this.waiting = new Map();
    this.resampler = null;
    /** All the text sent, and the words timed so far: [{text, start, end, endChar}] (with `words: true`). */
    this.sentText = "";
    this.words = [];
    this.sampleRate = null;
    this.heard = null;
    this.cancelling = null;
    this.settleCancel = null;
  }

  /** Send text; `final` ends the input, `flush` speaks what is buffered now without ending it. */
  text(text, { final = false, flush = false } = {}) {
    if (this.inputClosed) throw new VoxwireError("stream_closed", `stream ${this.id} takes no more text`);
    this.firstTextAt ??= performance.now();
    this.inputClosed = final;
    this.sentText += text;
    this.client.send({ type: "text", stream: this.id, text, final, flush });
  }

  /** End the input: what was sent is spoken to its end. */
  end() {
    this.text("", { final: true });
  }

  /**
   * Silence this stream now (a 20 ms fade), then tell the server how much was played. Resolves with
   * {heard, heardChars}: the text up to the last word heard (the server's `done.heard`; for a stream whose
   * `done` came earlier, from its word timings); null when the stream had already ended.
   */
  cancel() {
    if (this.cancelling) return this.cancelling;
    if (this.playerDone) return Promise.resolve(this.heard);
    this.cancelled = true;
    this.inputClosed = true;
    this.cancelling = new Promise((resolve) => (this.settleCancel = resolve));
    this.client.player.send({ type: "cancel", stream: this.id });
    return this.cancelling;
  }

  /** The player has stopped the stream after `played` frames (at the context's rate; null: unknown). */
  cancelledAt(played) {
    const rate = this.sampleRate ?? this.client.audioContext.sampleRate;
    const contextRate = this.client.audioContext.sampleRate;
    const samples = played === null ? undefined : Math.round((played * rate) / contextRate);
    if (!this.serverDone && this.client.connected) {
      this.client.send({ type: "cancel", stream: this.id, played: samples });
      return;
    }
    const heardChars = samples === undefined ? this.sentText.length : this.heardBy(samples);
    this.settle({ heard: this.sentText.slice(0, heardChars), heardChars });
  }

  /** Characters of the text heard by sample `played`: through the last word that ended by then. */
  heardBy(played) {
    let chars = 0;
    for (const word of this.words) if (word.end <= played) chars = word.endChar;
    return chars;
  }

  /** The playhead, in samples of the stream: time spent playing on the audio clock (underruns left out). */
  position() {
    const contextRate = this.client.audioContext.sampleRate;
    const now = Math.round(this.client.audioContext.currentTime * contextRate);
    let frames = 0;
    let since = null;
    for (const { event, frame } of this.playback) {
      if (event === "started" || event === "resumed") since = frame;
      else if (since !== null) {
        frames += frame - since;
        since = null;
      }
    }
    if (since !== null) frames += Math.max(0, now - since);
    return Math.round((frames * (this.sampleRate ?? contextRate)) / contextRate);
  }

  settle(heard) {
    this.heard = heard;
    this.settleCancel?.(heard);
    this.settleCancel = null;
  }

  receiveChunk(frame) {
    if (this.cancelled) return;
    this.waiting.set(frame.seq, frame);
    for (let next = this.waiting.get(this.nextSeq); next; next = this.waiting.get(this.nextSeq)) {
      this.waiting.delete(this.nextSeq);
      this.nextSeq++;
      this.play(next);
    }
  }

  play(frame) {
    if (frame.offset !== this.samples) {
      this.emit("error", {
        code: "bad_offset",
        message: `chunk ${frame.seq} starts at sample ${frame.offset}, expected ${this.samples}`,
      });
    }
    const pcm = pcm16(frame.audio);
    this.sampleRate = frame.sample_rate;
    if (frame.words) this.timeWords(frame.words);
    this.chunks++;
    this.samples += pcm.length;
    this.client.stats.chunks++;
    this.firstChunkAt ??= performance.now();
    const contextRate = this.client.audioContext.sampleRate;
    if (frame.sample_rate !== contextRate && !this.resampler) {
      this.resampler = new LinearResampler(frame.sample_rate, contextRate);
    }
    const samples = this.resampler ? this.resampler.push(toFloat(pcm)) : toFloat(pcm);
    this.client.player.send({ type: "audio", stream: this.id, samples }, [samples.buffer]);
    this.emit("chunk", { seq: frame.seq, offset: frame.offset, sampleRate: frame.sample_rate, pcm });
  }

  /** Words of a chunk, [text, start, end] each: placed in the text sent, and announced (`words`). */
  timeWords(words) {
    let from = this.words.length ? this.words[this.words.length - 1].endChar : 0;
    const added = [];
    for (const [text, start, end] of words) {
      const at = this.sentText.indexOf(text, from);
      const endChar = at === -1 ? from : at + text.length;
      from = endChar;
      added.push({ text, start, end, startChar: at === -1 ? from : at, endChar });
    }
    this.words.push(...added);
    this.emit("words", { words: added });
  }

  receiveDone(frame) {
    this.serverDone = true;
    this.inputClosed = true;
    this.client.player.send({ type: "end", stream: this.id });
    const { reason, chunks, samples, ttfa_ms } = frame;
    if (!this.cancelled && (chunks !== this.chunks || samples !== this.samples)) {
      const received = `received ${this.chunks} and ${this.samples}`;
      const message = `done counts ${chunks} chunks and ${samples} samples, ${received}`;
      this.emit("error", { code: "missing_chunks", message });
    }
    const heard = { heard: frame.heard, heardChars: frame.heard_chars };
    this.emit("done", { reason, chunks, samples, ttfa_ms, ...heard });
    if (this.cancelled && reason === "cancelled") {
      this.settle({ heard: frame.heard ?? null, heardChars: frame.heard_chars ?? null });
    }
    this.forgetWhenOver();
  }

  /** A stream's error ends it (a refused `start` gets no `done`): play what came, then move on. */
  receiveError(code, message) {
    this.failed = true;
    this.inputClosed = true;
    this.client.player.send({ type: "end", stream: this.id });
    this.emit("error", { code, message });
    this.forgetWhenOver();
  }

  disconnected(message) {
    if (this.serverDone) return;
    this.receiveError("disconnected", message);
    this.serverDone = true;
    this.emit("done", { reason: "error", chunks: this.chunks, samples: this.samples });
    this.forgetWhenOver();
  }

  fromPlayer({ type, frame, played }) {
    this.playback.push({ event: type, frame });
    switch (type) {
      case "started": {
        const ms = performance.now() - this.firstTextAt;
        this.emit("firstaudio", { ms, receivedMs: this.firstChunkAt - this.firstTextAt });
        break;
      }
      case "underrun":
        this.underruns++;
        this.emit("underrun", { count: this.underruns });
        break;
      case "cancelled":
        this.cancelledAt(played);
      // falls through
      case "ended":
        if (this.playerDone) break;
        this.playerDone = true;
        this.emit("ended", { cancelled: type === "cancelled" });
        this.forgetWhenOver();
        break;
    }
  }

  forgetWhenOver() {
    if (this.playerDone && (this.serverDone || this.failed)) this.client.forget(this);
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/** PCM16 little-endian bytes (any alignment) as an Int16Array. */
function pcm16(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const pcm = new Int16Array(bytes.byteLength >> 1);
  for (let i = 0; i < pcm.length; i++) pcm[i] = view.getInt16(2 * i, true);
  return pcm;
}

function toFloat(pcm) {
  const samples = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
  return samples;
}

/** Linear interpolation from one rate to another, continuous across the chunks of one stream. */
class LinearResampler {
  constructor(fromRate, toRate) {
    this.step = fromRate / toRate;
    this.position = 0; // input index of the next output sample, relative to the next chunk; -1 < position
    this.previous = 0; // the last input sample of the previous chunk (index -1)
  }

  push(input) {
    const last = input.length - 1;
    const count = this.position <= last ? Math.floor((last - this.position) / this.step) + 1 : 0;
    const output = new Float32Array(count);
    for (let k = 0; k < count; k++) {
      const index = Math.floor(this.position);
      const fraction = this.position - index;
      const a = index < 0 ? this.previous : input[index];
      const b = fraction > 0 ? input[index + 1] : a;
      output[k] = a + (b - a) * fraction;
      this.position += this.step;
    }
    this.position -= input.length;
    if (input.length) this.previous = input[last];
    return output;
  }
}
