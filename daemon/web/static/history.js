// This session's takes, newest first, each with its settings, its file, and "same again".

import { element, clear, formatSeconds } from "./dom.js";

// How the saved file's soundfile subtype reads to a person.
const SAMPLE_SIZES = { PCM_16: "16-bit", PCM_24: "24-bit", PCM_32: "32-bit integer", FLOAT: "32-bit float" };

export function takeUrl(job, token, query = "") {
  return `/takes/${encodeURIComponent(job)}${query}${query ? "&" : "?"}token=${encodeURIComponent(token)}`;
}

export function renderHistory(list, takes, { token, canRepeat, onAgain }) {
  clear(list);
  for (const take of [...takes].reverse()) {
    const request = take.request || {};
    const text = request.prompt || (request.audio ? "(continuation)" : "");
    const controls = [];
    const repeatable = canRepeat(take);
    if (take.seed !== null && take.seed !== undefined) {
      const again = element("button", { type: "button", class: "small", "data-again": take.job }, `same again with seed ${take.seed}`);
      again.disabled = !repeatable;
      if (!repeatable) again.title = "its audio input was sent from another tab";
      again.addEventListener("click", () => onAgain(take, take.seed));
      controls.push(again);
    }
    const fresh = element("button", { type: "button", class: "small" }, "new seed");
    fresh.disabled = !repeatable;
    fresh.addEventListener("click", () => onAgain(take, null));
    controls.push(fresh);
    // A later job with the same id saved over the file: the daemon answers 410, so no link.
    const link = take.replaced
      ? element("span", { class: "muted", "data-replaced": take.job }, "replaced by a later job with the same id")
      : element("a", { href: takeUrl(take.job, token), download: `${take.job}.${take.format}`, class: "button small" },
        `${take.format.toUpperCase()}`);
    const settings = [request.type, request.model, formatSeconds(take.duration_s), `${take.sample_rate} Hz`,
      SAMPLE_SIZES[take.subtype] || take.subtype,
      request.temperature !== undefined ? `temp ${request.temperature}` : null,
      request.guidance_scale !== undefined ? `cfg ${request.guidance_scale}` : null,
      request.top_k !== undefined ? `top_k ${request.top_k}` : null,
      request.top_p !== undefined ? `top_p ${request.top_p}` : null].filter(Boolean).join(" · ");
    list.append(element("li", { "data-take": take.job },
      element("div", { class: "take-title" }, element("code", {}, take.job), " ", element("span", {}, text)),
      element("div", { class: "muted" }, settings),
      element("div", { class: "row" }, link, ...controls)));
  }
  if (takes.length === 0) list.append(element("li", { class: "muted" }, "no takes yet"));
}
