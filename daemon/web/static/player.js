// Listening: one AudioContext at the stream's own sample rate (the browser converts to the sound
// card's), an AudioWorkletNode per job fed with its chunks, and replay of a finished take.

const PREBUFFER_S = 0.25; // the jitter buffer: small, so the first sound comes fast
const MAX_PREBUFFER_S = 4.0;

export class Player {
  constructor(onStats) {
    this.context = null;
    this.node = null;
    this.source = null;
    this.onStats = onStats;
  }

  /** Call from a click (browsers start audio only on a gesture): a running context at `sampleRate`. */
  async prepare(sampleRate) {
    if (this.context && this.context.sampleRate !== sampleRate) {
      await this.context.close();
      this.context = null;
    }
    if (!this.context) {
      this.context = new AudioContext({ sampleRate, latencyHint: "interactive" });
      this.ready = this.context.audioWorklet.addModule("/static/stream-worklet.js");
    }
    if (this.context.state === "suspended") await this.context.resume();
    await this.ready;
  }

  /** A new stream: stops what plays, opens a worklet for `channels` channels. */
  async startStream(sampleRate, channels) {
    this.stop();
    await this.prepare(sampleRate);
    this.node = new AudioWorkletNode(this.context, "riffd-stream", {
      numberOfInputs: 0,
      outputChannelCount: [Math.max(1, Math.min(channels, 2))],
      processorOptions: { prebufferFrames: Math.round(PREBUFFER_S * sampleRate),
                          maxPrebufferFrames: Math.round(MAX_PREBUFFER_S * sampleRate) },
    });
    this.node.port.onmessage = (event) => this.onStats(event.data);
    this.node.connect(this.context.destination);
  }

  push(planar) {
    // Copied, not transferred: the page keeps the blocks for the waveform and the take's replay.
    if (this.node) this.node.port.postMessage({ type: "chunk", planar });
  }

  end() {
    if (this.node) this.node.port.postMessage({ type: "end" });
  }

  /** Replay a whole take (planar blocks joined). */
  async playTake(blocks, sampleRate) {
    this.stop();
    await this.prepare(sampleRate);
    const channels = blocks.length ? blocks[0].length : 1;
    const frames = blocks.reduce((n, block) => n + block[0].length, 0);
    if (frames === 0) return;
    const buffer = this.context.createBuffer(channels, frames, sampleRate);
    for (let c = 0; c < channels; c++) {
      const data = buffer.getChannelData(c);
      let offset = 0;
      for (const block of blocks) {
        data.set(block[c], offset);
        offset += block[c].length;
      }
    }
    this.source = this.context.createBufferSource();
    this.source.buffer = buffer;
    this.source.connect(this.context.destination);
    this.source.start();
  }

  stop() {
    if (this.node) {
      this.node.port.postMessage({ type: "stop" });
      this.node.disconnect();
      this.node = null;
    }
    if (this.source) {
      this.source.stop();
      this.source.disconnect();
      this.source = null;
    }
  }
}
