// A waveform that grows as chunks arrive: the canvas spans the job's expected length, each pixel
// column keeps the min and max of the samples that fall in it, and only touched columns are drawn.
// Zoomed vertically so the peak fills the height (up to 32x: a quiet take stays visible); the
// peak level in dBFS is shown beside it, so the zoom never hides how loud the take really is.

export class Waveform {
  constructor(canvas) {
    this.canvas = canvas;
    this.reset(1, 1);
  }

  reset(totalFrames, sampleRate) {
    const ratio = window.devicePixelRatio || 1;
    this.canvas.width = Math.max(1, Math.round(this.canvas.clientWidth * ratio));
    this.canvas.height = Math.max(1, Math.round(this.canvas.clientHeight * ratio));
    this.totalFrames = Math.max(1, totalFrames);
    this.sampleRate = sampleRate;
    this.frames = 0;
    this.origin = 0; // the first frame of the page shown (an endless jam turns pages)
    this.playedFrames = 0;
    this.min = new Float32Array(this.canvas.width).fill(Infinity);
    this.max = new Float32Array(this.canvas.width).fill(-Infinity);
    this.columns = 0;
    this.peak = 0;
    this.canvas.dataset.frames = "0";
    this.canvas.dataset.columns = "0";
    this.draw();
  }

  /** Add a block (one Float32Array per channel) at `offset` frames; channels are drawn mixed. */
  add(planar, offset) {
    const width = this.canvas.width;
    const frames = planar[0].length;
    if (offset + frames - this.origin > this.totalFrames && offset > this.origin) this.turnPage(offset);
    const scale = width / this.totalFrames;
    let first = width;
    let last = -1;
    let peak = 0;
    for (let i = 0; i < frames; i++) {
      const column = Math.min(width - 1, Math.floor((offset - this.origin + i) * scale));
      let value = 0;
      for (const channel of planar) value += channel[i];
      value /= planar.length;
      if (Math.abs(value) > peak) peak = Math.abs(value);
      if (!(this.min[column] <= value)) this.min[column] = value;
      if (!(this.max[column] >= value)) this.max[column] = value;
      if (column < first) first = column;
      if (column > last) last = column;
    }
    const rescale = peak > this.peak * 1.05; // louder than drawn so far: redraw everything at the new zoom
    this.peak = Math.max(this.peak, peak);
    this.frames = Math.max(this.frames, offset + frames);
    this.columns = this.max.reduce((n, v) => n + (v > -Infinity ? 1 : 0), 0);
    this.canvas.dataset.frames = String(this.frames);
    this.canvas.dataset.columns = String(this.columns);
    if (rescale) this.draw();
    else this.draw(first, last);
  }

  turnPage(origin) {
    this.origin = origin;
    this.min.fill(Infinity);
    this.max.fill(-Infinity);
    this.draw();
  }

  /** The loudest sample so far, in dBFS. */
  get peakDb() {
    return this.peak > 0 ? 20 * Math.log10(this.peak) : -Infinity;
  }

  setPlayed(frames) {
    this.playedFrames = frames;
    this.draw();
  }

  draw(from = 0, to = this.canvas.width - 1) {
    const context = this.canvas.getContext("2d");
    const { width, height } = this.canvas;
    const style = getComputedStyle(this.canvas);
    const middle = height / 2;
    if (from === 0 && to === width - 1) {
      context.fillStyle = style.getPropertyValue("--wave-bg") || "#111";
      context.fillRect(0, 0, width, height);
    }
    const playedColumn = Math.floor((this.playedFrames - this.origin) * width / this.totalFrames);
    const zoom = this.peak > 0 ? Math.min(32, 0.9 / this.peak) : 1;
    for (let x = from; x <= to; x++) {
      if (!(this.max[x] > -Infinity)) continue;
      context.fillStyle = x < playedColumn ? (style.getPropertyValue("--wave-played") || "#7fd")
                                           : (style.getPropertyValue("--wave") || "#4a9");
      const top = middle - Math.max(this.max[x] * zoom, 0.01) * middle;
      const bottom = middle - Math.min(this.min[x] * zoom, -0.01) * middle;
      context.fillRect(x, top, 1, Math.max(1, bottom - top));
    }
  }
}
