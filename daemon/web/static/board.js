// The daemon at a glance: resident models and device, playback, and every job of every client
// (queue positions, priorities, progress, Jukebox stages) with a cancel button each.

import { element, clear } from "./dom.js";

export function renderBoard(root, state, { onCancel }) {
  document.getElementById("device").textContent = state.device;
  const models = root.querySelector("#models");
  clear(models);
  for (const model of state.models) {
    const details = `${model.family}, ${model.sample_rate} Hz, ${model.channels === 1 ? "mono" : `${model.channels} ch`}` +
      (model.melody ? ", melody" : "") + (model.id === state.default_model ? ", default" : "");
    models.append(element("li", {}, element("code", {}, model.id), ` ${details}`));
  }
  if (state.models.length === 0) models.append(element("li", { class: "muted" }, "none resident (loaded on first use)"));
  root.querySelector("#playback").textContent = state.playback === "off" ? "off" : state.playback;
  const underruns = root.querySelector("#underruns");
  underruns.textContent = String(state.underruns);
  underruns.classList.toggle("warn", state.underruns > 0);
  const clock = state.clock;
  root.querySelector("#tempo").textContent = !clock || clock.source === "none" ? "none (a request's bpm, or serve --link)"
    : `${clock.tempo.toFixed(2)} BPM (${clock.source === "link" ? `Link, ${clock.peers} peer${clock.peers === 1 ? "" : "s"}`
                                       : "own timeline"}), beat ${Math.floor(clock.beat)}`;
  root.querySelector("#queue-count").textContent = `${state.running} running, ${state.queued} queued of ${state.max_queue}`;

  // Rows are kept per job and updated in place: a row rebuilt under the pointer would swallow
  // the click on its cancel button.
  const body = root.querySelector("#jobs");
  const rows = new Map([...body.querySelectorAll("tr[data-job]")].map((row) => [row.dataset.job, row]));
  body.querySelector("tr.idle")?.remove();
  for (const job of state.jobs) {
    let row = rows.get(job.id);
    rows.delete(job.id);
    if (!row) row = newRow(job.id, onCancel);
    const percent = job.total ? Math.round((100 * job.done) / job.total) : 0;
    const where = job.state === "running" ? "running" : `queued #${job.position + 1}`;
    const cells = row.children;
    const texts = [job.id, job.client || "?", job.kind, job.prompt || "", job.model, String(job.priority), where];
    texts.forEach((text, i) => {
      if (cells[i].textContent !== text) cells[i].textContent = text;
    });
    cells[3].title = job.prompt || "";
    row.dataset.state = job.state;
    const bar = cells[7].querySelector("progress");
    bar.value = percent;
    bar.title = `${job.done ?? 0} of ${job.total ?? "?"}`;
    cells[7].querySelector(".percent").textContent = ` ${percent}%`;
    // A Jukebox render sends a preview from its top-level codes, then its final audio as it upsamples.
    cells[8].textContent = job.kind.startsWith("jukebox") && job.stage === "final" ? "upsampling" : job.stage || "";
    body.append(row); // in the daemon's order: running first, then the queue
  }
  for (const row of rows.values()) row.remove();
  if (state.jobs.length === 0) body.append(element("tr", { class: "idle" }, element("td", { colspan: "10", class: "muted" }, "idle")));

  const ended = root.querySelector("#ended");
  clear(ended);
  for (const item of state.ended) {
    const ok = item.outcome === "done";
    ended.append(element("li", { class: ok ? "" : "warn", "data-job": item.job },
      element("code", {}, item.job), ` ${ok ? "done" : item.outcome}${item.message ? `: ${item.message}` : ""}`));
  }
}

function newRow(job, onCancel) {
  const cancel = element("button", { type: "button", class: "small", "data-cancel": job }, "cancel");
  cancel.addEventListener("click", () => onCancel(job));
  const progress = element("td", {}, element("progress", { max: "100", value: "0" }), element("span", { class: "percent" }, ""));
  return element("tr", { "data-job": job },
    element("td", { class: "code" }), element("td", {}), element("td", {}), element("td", { class: "prompt" }),
    element("td", {}), element("td", { class: "num" }), element("td", {}), progress, element("td", {}),
    element("td", {}, cancel));
}
