// AudioWorklet processors of the voxwire browser client (loaded by voxwire.js; not imported by pages).
//
// "voxwire-player" plays every stream of one connection on one output, in the order the streams were
// opened: a queue of streams, each a queue of Float32Array chunks (already at the context's rate) that the
// main thread transfers in. A stream starts once it holds the jitter buffer (or has ended); when it runs dry
// before its end it underruns: silence, counted and reported, until it holds the jitter buffer again. When a
// stream ends the next one continues in the same sample if it is ready, so queued replies play back to back.
// "cancel" takes a stream out of the queue at once and fades what it was playing to zero over fadeFrames
// (a short ramp, not a cut mid-waveform: no click); the next stream may start during the fade. The
// "cancelled" reply counts the stream's frames played with the fade's, the listener's playhead.
//
// "voxwire-tap" (tests only) passes its input through and posts a copy of it, with the frame it started at.

class VoxwirePlayer extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { jitterFrames, statusFrames, fadeFrames } = options.processorOptions;
    this.jitterFrames = jitterFrames;
    this.statusFrames = statusFrames;
    this.fadeFrames = fadeFrames;
    this.streams = []; // in play order; this.streams[0] is the one playing or about to play
    this.fading = []; // cancelled streams still fading out: {stream, left, total}
    this.sumSquares = 0;
    this.statusCount = 0;
    this.idleReported = true;
    this.port.onmessage = (event) => this.handle(event.data);
  }

  handle(message) {
    const stream = this.streams.find((s) => s.id === message.stream);
    switch (message.type) {
      case "open":
        this.streams.push({ id: message.stream, chunks: [], readPos: 0, buffered: 0, played: 0,
                            ended: false, playing: false, started: false });
        break;
      case "audio":
        if (stream) {
          stream.chunks.push(message.samples);
          stream.buffered += message.samples.length;
        }
        break;
      case "end":
        if (stream) stream.ended = true;
        break;
      case "cancel":
        if (stream) {
          this.streams.splice(this.streams.indexOf(stream), 1);
          const fade = stream.playing ? Math.min(this.fadeFrames, stream.buffered) : 0;
          if (fade > 0) this.fading.push({ stream, left: fade, total: fade });
          stream.played += fade;
          this.post("cancelled", stream, currentFrame);
        } else {
          // Already ended (its "ended" crossed this cancel): nothing plays, but the main thread waits.
          const reply = { type: "cancelled", stream: message.stream, frame: currentFrame, played: null };
          this.port.postMessage(reply);
        }
        break;
    }
  }

  post(type, stream, frame) {
    this.port.postMessage({ type, stream: stream.id, frame, played: stream.played });
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    let i = 0;
    while (i < out.length && this.streams.length > 0) {
      const stream = this.streams[0];
      if (!stream.playing) {
        if (stream.ended && stream.buffered === 0) {
          this.streams.shift();
          this.post("ended", stream, currentFrame + i);
          continue;
        }
        if (!stream.ended && stream.buffered < this.jitterFrames) break;
        stream.playing = true;
        this.post(stream.started ? "resumed" : "started", stream, currentFrame + i);
        stream.started = true;
      }
      if (stream.buffered === 0) {
        stream.playing = false;
        if (!stream.ended) {
          this.post("underrun", stream, currentFrame + i);
          break;
        }
        continue;
      }
      const chunk = stream.chunks[0];
      const n = Math.min(out.length - i, chunk.length - stream.readPos);
      out.set(chunk.subarray(stream.readPos, stream.readPos + n), i);
      i += n;
      stream.readPos += n;
      stream.buffered -= n;
      stream.played += n;
      if (stream.readPos === chunk.length) {
        stream.chunks.shift();
        stream.readPos = 0;
      }
    }
    out.fill(0, i);
    this.fadeOut(out);
    this.report(out);
    return true;
  }

  /** Mix the fading streams in: each sample times a gain that falls linearly to zero over the fade. */
  fadeOut(out) {
    for (const fade of this.fading) {
      const stream = fade.stream;
      for (let k = 0; k < out.length && fade.left > 0; k++) {
        const chunk = stream.chunks[0];
        out[k] += chunk[stream.readPos] * (fade.left / (fade.total + 1));
        fade.left--;
        if (++stream.readPos === chunk.length) {
          stream.chunks.shift();
          stream.readPos = 0;
        }
      }
    }
    this.fading = this.fading.filter((fade) => fade.left > 0);
  }

  /** About every statusFrames frames while something is queued (and once on going idle): level and buffer. */
  report(out) {
    for (let k = 0; k < out.length; k++) this.sumSquares += out[k] * out[k];
    this.statusCount += out.length;
    if (this.statusCount < this.statusFrames) return;
    const stream = this.streams[0];
    if (stream || !this.idleReported) {
      let queued = 0;
      for (const s of this.streams) queued += s.buffered;
      this.port.postMessage({
        type: "status",
        stream: stream ? stream.id : null,
        rms: Math.sqrt(this.sumSquares / this.statusCount),
        buffered: stream ? stream.buffered : 0,
        queued,
        frame: currentFrame,
      });
    }
    this.idleReported = !stream;
    this.sumSquares = 0;
    this.statusCount = 0;
  }
}

class VoxwireTap extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.batch = new Float32Array(options.processorOptions.batchFrames);
    this.filled = 0;
    this.batchFrame = 0;
  }

  process(inputs, outputs) {
    const input = inputs[0][0];
    const out = outputs[0][0];
    if (input) out.set(input);
    else out.fill(0);
    if (this.filled === 0) this.batchFrame = currentFrame;
    this.batch.set(out, this.filled);
    this.filled += out.length;
    if (this.filled + out.length > this.batch.length) {
      this.port.postMessage({ frame: this.batchFrame, samples: this.batch.slice(0, this.filled) });
      this.filled = 0;
    }
    return true;
  }
}

registerProcessor("voxwire-player", VoxwirePlayer);
registerProcessor("voxwire-tap", VoxwireTap);
