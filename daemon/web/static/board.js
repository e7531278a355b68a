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
  root.querySelector("#queue-count").textContent = `${state.running} running, ${state.queued} queued of ${state.max_queue}`;

  const body = root.querySelector("#jobs");
  clear(body);
  for (const job of state.jobs) {
    const percent = job.total ? Math.round((100 * job.done) / job.total) : 0;
    const where = job.state === "running" ? "running" : `queued #${job.position + 1}`;
    const bar = element("progress", { max: "100", value: String(percent), title: `${job.done ?? 0} of ${job.total ?? "?"}` });
    const cancel = element("button", { type: "button", class: "small", "data-cancel": job.id }, "cancel");
    cancel.addEventListener("click", () => onCancel(job.id));
    body.append(element("tr", { "data-job": job.id, "data-state": job.state },
      element("td", {}, element("code", {}, job.id)),
      element("td", {}, job.client || "?"),
      element("td", {}, job.kind),
      element("td", { class: "prompt", title: job.prompt }, job.prompt || ""),
      element("td", {}, job.model),
      element("td", { class: "num" }, String(job.priority)),
      element("td", {}, where),
      element("td", {}, bar, element("span", { class: "percent" }, ` ${percent}%`)),
      element("td", {}, job.stage || ""),
      element("td", {}, cancel)));
  }
  if (state.jobs.length === 0) body.append(element("tr", {}, element("td", { colspan: "10", class: "muted" }, "idle")));

  const ended = root.querySelector("#ended");
  clear(ended);
  for (const item of state.ended) {
    const ok = item.outcome === "done";
    ended.append(element("li", { class: ok ? "" : "warn", "data-job": item.job },
      element("code", {}, item.job), ` ${ok ? "done" : item.outcome}${item.message ? `: ${item.message}` : ""}`));
  }
}
