// Jam controls: weighted prompt sliders (jam_prompts), temperature and guidance (jam_set), applied
// while it plays; snapshot and resume; stop. Changes are sent at most every DEBOUNCE_MS while a
// slider moves, so a drag is a few requests, not hundreds.

import { element, clear } from "./dom.js";

const DEBOUNCE_MS = 120;
const MAX_PROMPTS = 8;

export class JamPanel {
  constructor(root, send) {
    this.root = root;
    this.send = send;
    this.jam = null;
    this.timers = new Map();
    this.applied = 0;
    root.querySelector("#jam-add").addEventListener("click", () => {
      this.addRow("", 0.5);
      this.changed("prompts");
    });
    for (const name of ["temperature", "guidance"]) {
      const input = root.querySelector(`#jam-${name}`);
      input.addEventListener("input", () => {
        this.showValue(name);
        this.changed(name);
      });
    }
    root.querySelector("#jam-stop").addEventListener("click", () => this.jam && this.send({ type: "jam_stop", jam: this.jam }));
    root.querySelector("#jam-snapshot").addEventListener("click", () => this.jam && this.send({ type: "jam_snapshot", jam: this.jam }));
  }

  /** A jam started: its prompt as the first row, the sliders at its settings. */
  open(jam, fields) {
    this.jam = jam;
    this.applied = 0;
    this.root.dataset.applied = "0";
    this.root.dataset.jam = jam;
    clear(this.root.querySelector("#jam-prompts"));
    this.addRow(fields.prompt || "", 1);
    if (typeof fields.temperature === "number") this.root.querySelector("#jam-temperature").value = fields.temperature;
    if (typeof fields.guidance_scale === "number") this.root.querySelector("#jam-guidance").value = fields.guidance_scale;
    this.showValue("temperature");
    this.showValue("guidance");
    this.root.querySelector("#jam-applied-text").textContent = "";
    this.root.hidden = false;
  }

  close() {
    this.jam = null;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.root.hidden = true;
  }

  addRow(text, weight) {
    const rows = this.root.querySelector("#jam-prompts");
    if (rows.children.length >= MAX_PROMPTS) return;
    const prompt = element("input", { type: "text", class: "jam-text", value: text, placeholder: "another layer" });
    const slider = element("input", { type: "range", class: "jam-weight", min: "0", max: "1", step: "0.01", value: String(weight) });
    const shown = element("span", { class: "muted" }, Number(weight).toFixed(2));
    const remove = element("button", { type: "button", class: "small" }, "remove");
    const row = element("div", { class: "jam-row" }, prompt, slider, shown, remove);
    prompt.addEventListener("change", () => this.changed("prompts"));
    slider.addEventListener("input", () => {
      shown.textContent = Number(slider.value).toFixed(2);
      this.changed("prompts");
    });
    remove.addEventListener("click", () => {
      if (rows.children.length > 1) {
        row.remove();
        this.changed("prompts");
      }
    });
    rows.append(row);
  }

  showValue(name) {
    this.root.querySelector(`#jam-${name}-value`).textContent = this.root.querySelector(`#jam-${name}`).value;
  }

  changed(what) {
    if (!this.jam) return;
    clearTimeout(this.timers.get(what));
    this.timers.set(what, setTimeout(() => this.flush(what), DEBOUNCE_MS));
  }

  flush(what) {
    this.timers.delete(what);
    if (!this.jam) return;
    if (what === "prompts") {
      const rows = [...this.root.querySelectorAll(".jam-row")]
        .map((row) => [row.querySelector(".jam-text").value.trim(), Number(row.querySelector(".jam-weight").value)])
        .filter(([text]) => text);
      if (rows.length) this.send({ type: "jam_prompts", jam: this.jam, prompts: rows.map(([t]) => t), weights: rows.map(([, w]) => w) });
    } else if (what === "temperature") {
      this.send({ type: "jam_set", jam: this.jam, temperature: Number(this.root.querySelector("#jam-temperature").value) });
    } else if (what === "guidance") {
      this.send({ type: "jam_set", jam: this.jam, guidance_scale: Number(this.root.querySelector("#jam-guidance").value) });
    }
  }

  /** An `applied` event: the change is in the music from `offset_samples` on. */
  onApplied(event, sampleRate) {
    this.applied += 1;
    this.root.dataset.applied = String(this.applied);
    this.root.querySelector("#jam-applied-text").textContent =
      `${event.request || "change"} heard from ${(event.offset_samples / (sampleRate || 1)).toFixed(2)} s`;
  }

  /** A `snapshot` event: listed with a button that starts a new jam from it. */
  onSnapshot(event, resume) {
    const button = element("button", { type: "button", class: "small" }, "resume");
    button.addEventListener("click", () => resume(event.path));
    this.root.querySelector("#jam-snapshots").append(
      element("li", { "data-snapshot": event.path }, element("code", {}, event.path.split("/").pop()),
              ` at ${event.offset_samples} samples `, button));
  }
}
