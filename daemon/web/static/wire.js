// protocol/wire.py's frames in WebSocket messages (see daemon/web/frames.py).
// A request or event is a JSON header (`{"v": 1, "type": ..., fields}`), then raw PCM frames:
// little-endian float32, [channels, frames] channel-major. A header alone travels as text;
// with PCM, as one binary message of (uint32 LE length, bytes) per frame.

export const PROTOCOL_VERSION = 1;

/** A request's message: text, or packed frames when it carries audio buffers. */
export function encodeRequest(fields, buffers = []) {
  const header = JSON.stringify({ v: PROTOCOL_VERSION, ...fields });
  if (buffers.length === 0) return header;
  return pack([new TextEncoder().encode(header), ...buffers.map((b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength))]);
}

/** Inline audio for a request field: the reference in the header and the PCM frame beside it. */
export function inlineAudio(audioBuffer, index) {
  const channels = audioBuffer.numberOfChannels;
  const frames = audioBuffer.length;
  const pcm = new Float32Array(channels * frames);
  for (let c = 0; c < channels; c++) pcm.set(audioBuffer.getChannelData(c), c * frames);
  return {
    reference: { buffer: index, sample_rate: audioBuffer.sampleRate, channels, frames, dtype: "float32" },
    pcm,
  };
}

export function pack(frames) {
  const total = frames.reduce((n, f) => n + 4 + f.byteLength, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const frame of frames) {
    view.setUint32(offset, frame.byteLength, true);
    out.set(frame, offset + 4);
    offset += 4 + frame.byteLength;
  }
  return out.buffer;
}

export function unpack(buffer) {
  const view = new DataView(buffer);
  const frames = [];
  let offset = 0;
  while (offset < buffer.byteLength) {
    const length = view.getUint32(offset, true);
    offset += 4;
    if (offset + length > buffer.byteLength) throw new Error("a frame runs past the message");
    frames.push(buffer.slice(offset, offset + length));
    offset += length;
  }
  return frames;
}

/** An event from a message: {header, planar} (planar: one Float32Array per channel, chunks only). */
export function decodeEvent(data) {
  if (typeof data === "string") return { header: JSON.parse(data), planar: null };
  const [head, pcm] = unpack(data);
  const header = JSON.parse(new TextDecoder().decode(head));
  let planar = null;
  if (pcm !== undefined) {
    const samples = new Float32Array(pcm); // a copy of its own: aligned, transferable
    planar = [];
    for (let c = 0; c < header.channels; c++) planar.push(samples.slice(c * header.frames, (c + 1) * header.frames));
  }
  return { header, planar };
}
