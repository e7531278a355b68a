// The AudioWorklet that plays a job's chunks as they arrive: a queue of blocks read sample by
// sample across block boundaries (gapless), behind a small jitter buffer that starts playback
// once `prebufferFrames` are queued and grows after each underrun, so a model slower than real
// time stutters less the longer it plays. Reports what it received and played to the page.

class StreamProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const settings = options.processorOptions;
    this.prebuffer = settings.prebufferFrames;
    this.maxPrebuffer = settings.maxPrebufferFrames;
    this.queue = []; // arrays of per-channel Float32Array blocks
    this.readOffset = 0; // in queue[0]
    this.buffered = 0;
    this.received = 0;
    this.played = 0;
    this.underruns = 0;
    this.playing = false;
    this.ended = false;
    this.finished = false;
    this.alive = true;
    this.sinceReport = 0;
    this.port.onmessage = (event) => this.receive(event.data);
  }

  receive(message) {
    if (message.type === "chunk") {
      const frames = message.planar[0].length;
      this.queue.push(message.planar);
      this.buffered += frames;
      this.received += frames;
    } else if (message.type === "end") {
      this.ended = true;
    } else if (message.type === "stop") {
      this.queue = [];
      this.buffered = 0;
      this.ended = true;
      this.alive = false;
    }
  }

  process(inputs, outputs) {
    const out = outputs[0];
    const frames = out[0].length;
    if (!this.playing && (this.buffered >= this.prebuffer || (this.ended && this.buffered > 0))) this.playing = true;
    let written = 0;
    if (this.playing) {
      while (written < frames && this.queue.length > 0) {
        const block = this.queue[0];
        const n = Math.min(frames - written, block[0].length - this.readOffset);
        for (let c = 0; c < out.length; c++) {
          const source = block[Math.min(c, block.length - 1)];
          out[c].set(source.subarray(this.readOffset, this.readOffset + n), written);
        }
        written += n;
        this.readOffset += n;
        if (this.readOffset === block[0].length) {
          this.queue.shift();
          this.readOffset = 0;
        }
      }
      this.buffered -= written;
      this.played += written;
      if (written < frames && !this.ended) {
        // Ran dry mid-stream: count it, wait for a larger buffer before sounding again.
        this.underruns += 1;
        this.playing = false;
        this.prebuffer = Math.min(this.maxPrebuffer, this.prebuffer * 2);
      }
    }
    for (let c = 0; c < out.length; c++) out[c].fill(0, written);
    this.sinceReport += frames;
    const done = this.ended && this.queue.length === 0 && !this.finished;
    if (done) this.finished = true;
    if (done || this.sinceReport >= sampleRate / 20) {
      this.sinceReport = 0;
      this.port.postMessage({ type: "stats", received: this.received, played: this.played, underruns: this.underruns,
                              buffered: this.buffered, finished: this.finished });
    }
    return this.alive && !this.finished;
  }
}

registerProcessor("riffd-stream", StreamProcessor);
