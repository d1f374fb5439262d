/* global document, URL, Blob */
/**
 * The events under the video: a timeline with one bar per event (placed by its start and end over the video's
 * length, overlapping events on separate rows, a playhead), a list beside it, and SRT / WebVTT downloads built in the
 * page. Selecting a bar or an entry seeks the video to the event's start (a playing video plays on from there, a
 * paused one shows that frame); hovering or focusing a bar shows its times and text. Bars and entries are buttons
 * (Tab, Enter / Space; ← → move between bars), and the events that hold the current time are marked as current.
 */
import { eventLabel, eventsAt, exportName, formatSrt, formatVtt, spanLabel, timelineLayout } from "./events.js";

/**
 * `els`: {video, boxes (shown once there is a result), track, playhead, tip, list, status, raw, rawText, exports, srt, vtt};
 * `seek(seconds)`: the page's seek (it also brings the player into view).
 */
export function createEventsView(els, seek) {
  let events = [];
  let resultDuration = 0;
  let bars = [];
  let items = [];
  let urls = [];

  const duration = () => (Number.isFinite(els.video.duration) && els.video.duration > 0 ? els.video.duration : resultDuration);

  function showTip(i) {
    const bar = bars[i];
    if (!bar) return;
    els.tip.textContent = eventLabel(events[i]);
    els.tip.hidden = false;
    // Centred over the bar, shifted to stay within the timeline's width.
    const track = els.track.getBoundingClientRect();
    const box = bar.getBoundingClientRect();
    const width = els.tip.getBoundingClientRect().width;
    const center = box.left + box.width / 2 - track.left;
    els.tip.style.left = `${Math.max(0, Math.min(center - width / 2, track.width - width))}px`;
    els.tip.dataset.index = String(i);
  }

  function hideTip(i) {
    if (els.tip.dataset.index === String(i)) els.tip.hidden = true;
  }

  function layout() {
    const { bars: placed, lanes } = timelineLayout(events, duration());
    els.track.style.setProperty("--lanes", String(lanes));
    for (const p of placed) {
      const bar = bars[p.index];
      bar.style.left = `${p.left}%`;
      bar.style.width = `${p.width}%`;
      bar.style.setProperty("--lane", String(p.lane));
      bar.dataset.lane = String(p.lane);
    }
    markCurrent();
  }

  function markCurrent() {
    const t = els.video.currentTime || 0;
    const d = duration();
    els.playhead.style.left = `${d > 0 ? (100 * Math.min(t, d)) / d : 0}%`;
    const now = new Set(eventsAt(events, t));
    const mark = (el, on) => {
      el.classList.toggle("current", on);
      if (on) el.setAttribute("aria-current", "true");
      else el.removeAttribute("aria-current");
    };
    bars.forEach((b, i) => mark(b, now.has(i)));
    items.forEach((b, i) => mark(b, now.has(i)));
  }

  function go(i) {
    seek(events[i].start);
    markCurrent();
  }

  function makeBar(e, i) {
    const bar = document.createElement("button");
    bar.type = "button";
    bar.className = "event-bar";
    bar.dataset.index = String(i);
    bar.dataset.start = String(e.start);
    bar.dataset.end = String(e.end);
    bar.setAttribute("aria-label", `Event ${i + 1} of ${events.length}: ${eventLabel(e)}. Jump to ${spanLabel({ start: e.start, end: e.start })}`);
    bar.setAttribute("aria-describedby", els.tip.id);
    bar.addEventListener("click", () => go(i));
    bar.addEventListener("mouseenter", () => showTip(i));
    bar.addEventListener("mouseleave", () => hideTip(i));
    bar.addEventListener("focus", () => showTip(i));
    bar.addEventListener("blur", () => hideTip(i));
    bar.addEventListener("keydown", (ev) => {
      const step = ev.key === "ArrowRight" ? 1 : ev.key === "ArrowLeft" ? -1 : 0;
      if (!step) return;
      ev.preventDefault();
      bars[(i + step + bars.length) % bars.length].focus();
    });
    return bar;
  }

  function makeItem(e, i) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "event-item";
    b.dataset.index = String(i);
    b.setAttribute("aria-label", `${eventLabel(e)}. Jump to ${spanLabel({ start: e.start, end: e.start })}`);
    const time = document.createElement("span");
    time.className = "event-time";
    time.textContent = spanLabel(e);
    const text = document.createElement("span");
    text.className = "event-text";
    text.textContent = e.text;
    b.append(time, text);
    b.addEventListener("click", () => go(i));
    li.append(b);
    items.push(b);
    return li;
  }

  function setExports(videoName) {
    for (const u of urls) URL.revokeObjectURL(u);
    urls = [];
    const link = (a, text, type, extension) => {
      const url = URL.createObjectURL(new Blob([text], { type }));
      urls.push(url);
      a.href = url;
      a.download = exportName(videoName, extension);
    };
    link(els.srt, formatSrt(events), "application/x-subrip;charset=utf-8", "srt");
    link(els.vtt, formatVtt(events), "text/vtt;charset=utf-8", "vtt");
    els.exports.hidden = events.length === 0;
  }

  /**
   * Draws a result ({events, duration, raw?, parsed?, warnings?}: /v1/events' answer, or a chat answer's `events`)
   * and says in `status` what it holds.
   */
  function show(result, { videoName, status } = {}) {
    events = (result.events ?? []).filter((e) => Number.isFinite(e.start) && Number.isFinite(e.end));
    resultDuration = Number(result.duration) || 0;
    items = [];
    bars = events.map(makeBar);
    els.track.replaceChildren(...bars);
    els.list.replaceChildren(...events.map(makeItem));
    els.tip.hidden = true;
    for (const b of els.boxes) b.hidden = false;
    layout();
    setExports(videoName);
    els.status.textContent = status ?? "";
    els.rawText.textContent = result.raw ?? "";
    els.raw.hidden = !result.raw;
    els.raw.open = result.parsed === false; // nothing parsed: the model's words are the answer
  }

  function clear() {
    events = [];
    bars = [];
    items = [];
    els.track.replaceChildren();
    els.list.replaceChildren();
    for (const b of els.boxes) b.hidden = true;
    els.status.textContent = "";
    setExports();
  }

  for (const type of ["timeupdate", "seeked"]) els.video.addEventListener(type, markCurrent);
  els.video.addEventListener("durationchange", () => events.length && layout());

  return { show, clear };
}
