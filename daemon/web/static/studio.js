// The studio page: one WebSocket to the daemon (requests in protocol.wire's frames, events back),
// the request forms, listening while a take streams, the take, the board and the history.

import { decodeEvent, encodeRequest, inlineAudio } from "./wire.js";
import { Player } from "./player.js";
import { Waveform } from "./waveform.js";
import { renderBoard } from "./board.js";
import { renderHistory, takeUrl } from "./history.js";
import { formatSeconds } from "./dom.js";
import { JamPanel } from "./jam.js";

const JAM_PAGE_S = 30; // an endless jam's waveform shows this much, then turns the page

const $ = (selector) => document.querySelector(selector);

const token = new URLSearchParams(location.search).get("token") || sessionStorage.getItem("riffd-token") || "";
if (token) sessionStorage.setItem("riffd-token", token);
// Out of the address bar (a shared screen, a screenshot): the tab keeps it for reloads.
if (new URLSearchParams(location.search).has("token")) history.replaceState(null, "", location.pathname);

const studio = {
  socket: null,
  retryMs: 500,
  limits: null,
  board: null,
  takes: [],
  mode: "generate",
  upload: null, // {name, audio: AudioBuffer}
  pending: new Map(), // request id -> {fields, buffers}
  inputs: new Map(), // job -> {fields, buffers}: what made a take, to send it again
  requestCount: 0,
  current: null, // the take streaming or last streamed in this tab
};

const player = new Player(onWorkletStats);
const jamPanel = new JamPanel(document.querySelector("#jam"), (fields) => send(fields));
const waveform = new Waveform($("#wave"));

// -- connection -------------------------------------------------------------------------------

function connect() {
  if (!token) {
    setConnection("no token", "bad");
    showError("Open the address `riffd serve` printed (it carries the studio's token).");
    return;
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws?token=${encodeURIComponent(token)}`);
  socket.binaryType = "arraybuffer";
  studio.socket = socket;
  setConnection("connecting", "");
  socket.addEventListener("open", () => {
    studio.retryMs = 500;
    setConnection("connected", "ok");
  });
  socket.addEventListener("message", (message) => receive(decodeEvent(message.data)));
  socket.addEventListener("close", (event) => {
    studio.socket = null;
    if (event.code === 1009) showError("That upload is larger than the daemon accepts in one message.");
    setConnection("reconnecting", "bad");
    setTimeout(connect, studio.retryMs);
    studio.retryMs = Math.min(5000, studio.retryMs * 2);
  });
}

function setConnection(text, kind) {
  const pill = $("#connection");
  pill.textContent = text;
  pill.className = `pill ${kind}`;
}

function send(fields, buffers = []) {
  if (!studio.socket || studio.socket.readyState !== WebSocket.OPEN) {
    showError("Not connected to the daemon.");
    return null;
  }
  const id = `tab-${Date.now().toString(36)}-${++studio.requestCount}`;
  studio.socket.send(encodeRequest({ ...fields, id }, buffers));
  return id;
}

// -- events -----------------------------------------------------------------------------------

function receive({ header, planar }) {
  switch (header.type) {
    case "web.hello":
      studio.limits = header.limits;
      $("#jam-tab").hidden = !header.requests.includes("jam");
      return;
    case "web.studio":
      studio.board = header;
      renderBoard($("#daemon"), header, { onCancel: cancel });
      updateModels();
      return;
    case "web.takes":
      studio.takes = header.takes;
      drawHistory();
      labelFileRate();
      return;
    default:
      onEvent(header, planar);
  }
}

function onEvent(event, planar) {
  const current = studio.current;
  const mine = current && (event.re === current.id || (current.job && event.job === current.job));
  if (event.type === "error") {
    if (studio.pending.has(event.re) || mine || !event.job) showError(`${event.message} [${event.code}]`);
    studio.pending.delete(event.re);
    if (mine) finishStream(false);
    return;
  }
  if (!mine) return;
  switch (event.type) {
    case "accepted":
      current.job = event.job;
      if (studio.pending.has(event.re)) studio.inputs.set(event.job, studio.pending.get(event.re));
      studio.pending.delete(event.re);
      setNow(`${event.job}: queued, ${event.queue_position} ahead`);
      $("#cancel").disabled = false;
      break;
    case "started":
      current.sampleRate = event.sample_rate;
      current.channels = event.channels;
      current.seed = event.seed;
      current.expectedFrames = Math.round((current.jam ? JAM_PAGE_S : current.durationS) * event.sample_rate);
      if (current.jam) jamPanel.open(event.job, current.fields);
      $("#seed-reported").textContent = event.seed ?? "";
      setNow(`${event.job}: playing as it streams (seed ${event.seed})`);
      waveform.reset(current.expectedFrames, event.sample_rate);
      current.ready = player.startStream(event.sample_rate, event.channels).catch((error) => {
        showError(`Audio output failed: ${error.message}`);
      });
      break;
    case "progress":
      $("#progress").value = event.total ? (100 * event.done) / event.total : 0;
      break;
    case "chunk":
      if (event.stage !== "final" || !planar) break;
      if (!current.jam) current.blocks.push(planar); // a jam is endless: its take is the saved file
      current.chunks += 1;
      waveform.add(planar, event.offset_samples);
      $("#now").dataset.chunks = String(current.chunks);
      current.ready.then(() => player.push(planar));
      break;
    case "applied":
      jamPanel.onApplied(event, current.sampleRate);
      break;
    case "snapshot":
      jamPanel.onSnapshot(event, resumeJam);
      break;
    case "done":
      current.path = event.path;
      current.frames = event.frames;
      $("#progress").value = 100;
      setNow(`${event.job}: done, ${formatSeconds(event.frames / (event.sample_rate || 1))}`);
      finishStream(true);
      break;
    default:
      break;
  }
}

function finishStream(ok) {
  const current = studio.current;
  $("#cancel").disabled = true;
  $("#go").disabled = false;
  if (!current) return;
  if (current.jam) jamPanel.close();
  if (current.ready) current.ready.then(() => player.end());
  if (ok && current.path) showTake(current);
}

function onWorkletStats(stats) {
  const now = $("#now");
  now.dataset.workletReceived = String(stats.received);
  now.dataset.workletPlayed = String(stats.played);
  now.dataset.underruns = String(stats.underruns);
  $("#listen-stats").textContent =
    `heard ${formatSeconds(stats.played / (player.context?.sampleRate || 1))}, buffered ` +
    `${formatSeconds(stats.buffered / (player.context?.sampleRate || 1))}, underruns ${stats.underruns}, ` +
    `peak ${Number.isFinite(waveform.peakDb) ? waveform.peakDb.toFixed(1) : "-inf"} dBFS`;
  waveform.setPlayed(stats.played);
}

// -- the take ---------------------------------------------------------------------------------

function showTake(current) {
  const panel = $("#take");
  panel.hidden = false;
  panel.dataset.job = current.job;
  const format = current.path.split(".").pop();
  const link = $("#download");
  link.href = takeUrl(current.job, token);
  link.download = `${current.job}.${format}`;
  link.textContent = `Download ${format.toUpperCase()}`;
  labelFileRate();
  updateExport();
  const drag = $("#drag");
  drag.href = link.href;
  drag.dataset.url = new URL(link.href, location.href).href;
  drag.dataset.name = link.download;
}

// An export "as is" keeps the saved file's rate, which is not the model's with out_sample_rate:
// it is the take's in the list (the list follows `done`, so until then the label has no number).
function labelFileRate() {
  const job = $("#take").dataset.job;
  const take = studio.takes.find((t) => t.job === job);
  $("#export-rate").options[0].textContent = take ? `${take.sample_rate} Hz (the file's)` : "the file's";
}

function updateExport() {
  const job = $("#take").dataset.job;
  if (!job) return;
  const format = $("#export-format").value;
  const depth = $("#export-depth");
  // FLAC stores 16 or 24-bit samples (the daemon's check_saved_file), neither 32-bit integers nor floats.
  for (const wide of ["32", "float"]) depth.querySelector(`option[value="${wide}"]`).disabled = format === "flac";
  if (format === "flac" && ["32", "float"].includes(depth.value)) depth.value = "24";
  const params = new URLSearchParams({ format, bit_depth: depth.value });
  if ($("#export-rate").value) params.set("sample_rate", $("#export-rate").value);
  const link = $("#export");
  link.href = takeUrl(job, token, `/export?${params}`);
  const rate = $("#export-rate").value ? `-${$("#export-rate").value}hz` : "";
  const bits = depth.value === "float" ? "float" : `${depth.value}bit`;
  link.download = `${job}${rate}-${bits}.${format}`; // as the daemon names it
}

// -- requests ---------------------------------------------------------------------------------

function numberOrText(text) {
  const trimmed = text.trim();
  return trimmed !== "" && Number.isFinite(Number(trimmed)) ? Number(trimmed) : trimmed;
}

/** The form's fields as the schema names them; blanks are left out (the daemon's defaults). */
function formFields() {
  const type = { continue: "continue", jam: "jam" }[studio.mode] || "generate";
  const fields = { type, save: true, chunks: true };
  const prompt = $("#prompt").value;
  if (studio.mode !== "continue" || prompt) fields.prompt = prompt;
  // A jam runs until stopped; anything else, as long as asked (the daemon says what is wrong with it).
  if (type !== "jam") fields.duration_s = numberOrText($("#duration").value);
  const optional = { model: "#model", seed: "#seed", temperature: "#temperature", top_k: "#top-k", top_p: "#top-p",
                     guidance_scale: "#guidance", priority: "#priority", out_sample_rate: "#out-rate",
                     bit_depth: "#out-depth" };
  for (const [name, selector] of Object.entries(optional)) {
    const value = $(selector).value.trim();
    if (value !== "") fields[name] = name === "model" ? value : numberOrText(value);
  }
  fields.format = $("#out-format").value;
  Object.assign(fields, inTimeFields(type));
  return fields;
}

// The tempo fields (issue 15), sent only when something in the "In time" box is set; a take in
// bars sends duration 0, and a jam has no bars or loop (it runs until stopped).
function inTimeFields(type) {
  const out = {};
  const text = { bars: "#bars", quantum: "#quantum", bpm: "#bpm" };
  for (const [name, selector] of Object.entries(text)) {
    const value = $(selector).value.trim();
    if (value !== "" && !(type === "jam" && name === "bars")) out[name] = numberOrText(value);
  }
  if ($("#launch").value) out.launch = $("#launch").value;
  if ($("#loop").checked && type !== "jam") out.loop = true;
  if (Object.keys(out).length > 0 && !$("#conform").checked) out.conform = false;
  if (out.bars !== undefined) out.duration_s = 0;
  return out;
}

async function submit(event) {
  event.preventDefault();
  hideError();
  const fields = formFields();
  const buffers = [];
  if (studio.mode === "continue" || studio.mode === "melody") {
    if (!studio.upload) {
      showError(studio.mode === "continue" ? "Drop the audio to continue first." : "Drop a melody first.");
      return;
    }
    const { reference, pcm } = inlineAudio(studio.upload.audio, 0);
    fields[studio.mode === "continue" ? "audio" : "melody"] = reference;
    buffers.push(pcm);
  }
  await start(fields, buffers);
}

async function start(fields, buffers) {
  const size = buffers.reduce((n, b) => n + b.byteLength, 0);
  if (studio.limits && size > studio.limits.max_upload_bytes) {
    showError(`The audio is ${(size / 2 ** 20).toFixed(1)} MB as samples, over the daemon's ` +
              `${(studio.limits.max_upload_bytes / 2 ** 20).toFixed(0)} MB per request; use a shorter excerpt.`);
    return;
  }
  // Audio starts only from a gesture: open the context now, at the rate the model will stream at.
  await player.prepare(modelRate(fields.model)).catch(() => {});
  player.stop();
  const id = send(fields, buffers);
  if (id === null) return;
  studio.pending.set(id, { fields, buffers });
  // A take in bars: its length at the tempo given (else 120 BPM) spans the waveform; more turns a page.
  const bars = typeof fields.bars === "number" ? fields.bars * (fields.quantum || 4) * 60 / (fields.bpm || 120) : 0;
  const duration = typeof fields.duration_s === "number" && fields.duration_s > 0 ? fields.duration_s : bars;
  studio.current = { id, job: null, durationS: duration, blocks: [], chunks: 0, ready: Promise.resolve(),
                     jam: fields.type === "jam", fields };
  $("#take").hidden = true;
  $("#take").dataset.job = "";
  $("#now").dataset.chunks = "0";
  $("#seed-reported").textContent = "";
  $("#progress").value = 0;
  $("#go").disabled = true;
  setNow("sent");
}

function resumeJam(path) {
  const fields = { type: "jam", prompt: "", resume: path, save: true, chunks: true, format: $("#out-format").value };
  start(fields, []);
}

function cancel(job) {
  send({ type: "cancel", job });
}

function again(take, seed) {
  const input = studio.inputs.get(take.job);
  const fields = { ...(input ? input.fields : take.request) };
  delete fields.id;
  if (seed === null) delete fields.seed;
  else fields.seed = seed;
  start(fields, input ? input.buffers : []);
}

function drawHistory() {
  renderHistory($("#history-list"), studio.takes, {
    token,
    canRepeat: (take) => !Object.values(take.request || {}).some((v) => v && v.inline) || studio.inputs.has(take.job),
    onAgain: again,
  });
}

// -- models and inputs ------------------------------------------------------------------------

function modelRate(model) {
  const models = studio.board ? studio.board.models : [];
  const found = models.find((m) => m.id === (model || studio.board?.default_model));
  return found ? found.sample_rate : 32000;
}

function updateModels() {
  const select = $("#model");
  const chosen = select.value;
  const models = studio.board.models.filter((m) => m.family === "musicgen" && (studio.mode !== "melody" || m.melody));
  const wanted = ["", ...models.map((m) => m.id)];
  const have = [...select.options].map((o) => o.value);
  if (wanted.join("\n") !== have.join("\n")) {
    select.replaceChildren(new Option(`default (${studio.board.default_model})`, ""),
                           ...models.map((m) => new Option(m.id, m.id)));
    if (wanted.includes(chosen)) select.value = chosen;
  }
  $("#melody-note").hidden = !(studio.mode === "melody" && models.length === 0);
}

function setMode(mode) {
  studio.mode = mode;
  for (const tab of document.querySelectorAll("[data-mode]")) tab.setAttribute("aria-selected", String(tab.dataset.mode === mode));
  $("#drop").hidden = mode === "generate" || mode === "jam";
  $("#duration-label").hidden = mode === "jam";
  $("#bars-label").hidden = mode === "jam";
  $("#loop-label").hidden = mode === "jam";
  $("#drop-label").textContent = mode === "continue" ? "Drop the audio to continue (or click to choose)"
                                                      : "Drop a melody to follow (or click to choose)";
  $("#go").textContent = { continue: "Continue", jam: "Start jam" }[mode] || "Generate";
  if (studio.board) updateModels();
}

async function takeFile(file) {
  if (!file) return;
  hideError();
  try {
    const rate = modelRate($("#model").value);
    const bytes = await file.arrayBuffer();
    // Decoded by the browser at the model's rate: any format it plays, no upload of the raw file.
    const audio = await new OfflineAudioContext(1, 1, rate).decodeAudioData(bytes);
    studio.upload = { name: file.name, audio };
    $("#drop-file").textContent = `${file.name}: ${formatSeconds(audio.duration)}, ${audio.numberOfChannels} ch`;
  } catch (error) {
    studio.upload = null;
    $("#drop-file").textContent = "";
    showError(`${file.name} could not be decoded as audio (${error.message || error}).`);
  }
}

// -- messages on the page ---------------------------------------------------------------------

function showError(text) {
  const box = $("#error");
  box.textContent = text;
  box.hidden = false;
}

function hideError() {
  $("#error").hidden = true;
  $("#error").textContent = "";
}

function setNow(text) {
  $("#now-text").textContent = text;
}

// -- wiring -----------------------------------------------------------------------------------

$("#request-form").addEventListener("submit", submit);
$("#prompt").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("#request-form").requestSubmit();
});
$("#cancel").addEventListener("click", () => studio.current?.job && cancel(studio.current.job));
for (const tab of document.querySelectorAll("[data-mode]")) tab.addEventListener("click", () => setMode(tab.dataset.mode));
const drop = $("#drop");
drop.addEventListener("click", () => $("#file").click());
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  takeFile(event.dataTransfer.files[0]);
});
$("#file").addEventListener("change", (event) => takeFile(event.target.files[0]));
for (const id of ["#export-format", "#export-rate", "#export-depth"]) $(id).addEventListener("change", updateExport);
$("#drag").addEventListener("dragstart", (event) => {
  // Chrome saves a DownloadURL dropped on the desktop or a DAW as the file itself.
  const drag = event.currentTarget;
  const kind = drag.dataset.name.endsWith(".flac") ? "audio/flac" : "audio/wav";
  event.dataTransfer.setData("DownloadURL", `${kind}:${drag.dataset.name}:${drag.dataset.url}`);
  event.dataTransfer.setData("text/uri-list", drag.dataset.url);
});
$("#play").addEventListener("click", () => {
  const current = studio.current;
  if (current && current.blocks.length) player.playTake(current.blocks, current.sampleRate);
});
$("#stop").addEventListener("click", () => player.stop());
setMode("generate");
connect();
