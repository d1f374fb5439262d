/* global document, window, localStorage, fetch, XMLHttpRequest, URL, AbortController, TextDecoder, setTimeout, clearTimeout, performance */
/**
 * The videolm web app: upload a video, see the sampling plan (the frames the model will see), ask, watch the answer
 * stream in, and jump to the times it mentions. Plain ES module, no dependencies; talks to the same server's API.
 */
import { findTimestamps, formatTime, splitThink } from "./timestamps.js";
import { keptPerFrame, savingText } from "./pruning.js";
import { createEventsView } from "./events-view.js";
import { resultSummary } from "./events.js";

const $ = (id) => document.getElementById(id);
const els = {
  app: $("app"), model: $("model"), theme: $("theme"), drop: $("drop"), file: $("file"), progress: $("upload-progress"),
  player: $("player"), video: $("video"), fileInfo: $("file-info"), fps: $("fps"), resolution: $("resolution"),
  maxFrames: $("max-frames"), prune: $("prune"), planForm: $("plan-form"), summary: $("plan-summary"), frames: $("frames"),
  askForm: $("ask-form"), question: $("question"), maxTokens: $("max-tokens"), ask: $("ask"), stop: $("stop"),
  error: $("error"), answer: $("answer"), thinking: $("thinking"), reasoning: $("reasoning"), answerText: $("answer-text"),
  stats: $("answer-stats"), cost: $("plan-cost"), limits: $("plan-limits"),
  eventsForm: $("events-form"), eventsQuery: $("events-query"), findMoments: $("find-moments"), listEvents: $("list-events"),
  eventsStatus: $("events-status"),
};

const RESOLUTIONS = {
  auto: {},
  low: { min_pixels: 4 * 28 * 28, max_pixels: 64 * 28 * 28 },
  medium: { min_pixels: 4 * 28 * 28, max_pixels: 256 * 28 * 28 },
  high: { min_pixels: 4 * 28 * 28, max_pixels: 768 * 28 * 28 },
};

const state = { modelId: undefined, uploadUrl: undefined, objectUrl: undefined, fileName: undefined, planSeq: 0, askController: undefined, eventsController: undefined };

// ---------- small helpers ----------

function showError(message) {
  els.error.textContent = message;
  els.error.hidden = !message;
}

async function apiError(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch {
    // not JSON
  }
  return `The server answered HTTP ${response.status}.`;
}

function seek(seconds) {
  const v = els.video;
  if (!v.src) return;
  v.currentTime = seconds;
  els.player.scrollIntoView({ block: "nearest", behavior: "smooth" });
}

const eventsView = createEventsView(
  {
    video: els.video, boxes: [$("timeline"), $("events-result")], track: $("timeline-track"), playhead: $("playhead"), tip: $("event-tip"),
    list: $("events-list"), status: els.eventsStatus, raw: $("events-raw"), rawText: $("events-raw-text"), exports: $("events-export"),
    srt: $("export-srt"), vtt: $("export-vtt"),
  },
  seek,
);

function timestampLink(label, seconds) {
  const a = document.createElement("a");
  a.href = `#t=${seconds}`;
  a.className = "timestamp";
  a.textContent = label;
  a.dataset.seconds = String(seconds);
  a.title = `Jump to ${formatTime(seconds)}`;
  a.addEventListener("click", (e) => {
    e.preventDefault();
    seek(seconds);
  });
  return a;
}

/** Renders text into `el`, with the times it mentions as links (only times inside the video, when its length is known). */
function renderWithTimestamps(el, text) {
  const duration = Number.isFinite(els.video.duration) ? els.video.duration : Infinity;
  const fragment = document.createDocumentFragment();
  let at = 0;
  for (const t of findTimestamps(text)) {
    if (!(t.seconds <= duration + 0.5) || !els.video.src) continue;
    fragment.append(text.slice(at, t.start), timestampLink(text.slice(t.start, t.end), t.seconds));
    at = t.end;
  }
  fragment.append(text.slice(at));
  el.replaceChildren(fragment);
}

// ---------- model info and theme ----------

async function loadModel() {
  try {
    const r = await fetch("/v1/models");
    if (!r.ok) throw new Error(await apiError(r));
    const m = (await r.json()).data[0];
    state.modelId = m.id;
    els.model.textContent = `${m.id}${m.family ? ` · ${m.family}` : ""}${m.context_length ? ` · ${m.context_length.toLocaleString()}-token context` : ""}`;
  } catch (err) {
    els.model.textContent = "server unreachable";
    showError(`Cannot reach the server: ${err.message}`);
  }
}

function applyTheme(theme) {
  if (theme) document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}
applyTheme(localStorage.getItem("videolm-theme"));
els.theme.addEventListener("click", () => {
  const current = document.documentElement.dataset.theme || (window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
  const next = current === "dark" ? "light" : "dark";
  localStorage.setItem("videolm-theme", next);
  applyTheme(next);
});

// ---------- upload ----------

function upload(file) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/v1/uploads?filename=${encodeURIComponent(file.name)}`);
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) els.progress.value = e.loaded / e.total;
    };
    xhr.onload = () => {
      let body;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = undefined;
      }
      if (xhr.status === 201 && body) resolve(body);
      else reject(new Error(body?.error?.message ?? `upload failed (HTTP ${xhr.status})`));
    };
    xhr.onerror = () => reject(new Error("upload failed: the connection to the server was lost"));
    xhr.send(file);
  });
}

async function handleFile(file) {
  if (!file) return;
  showError("");
  state.uploadUrl = undefined;
  state.fileName = file.name;
  delete els.app.dataset.upload;
  state.eventsController?.abort();
  eventsView.clear();
  if (state.objectUrl) URL.revokeObjectURL(state.objectUrl);
  state.objectUrl = URL.createObjectURL(file);
  els.video.src = state.objectUrl;
  els.player.hidden = false;
  els.fileInfo.textContent = `${file.name} · ${(file.size / 1024 / 1024).toFixed(1)} MB`;
  els.frames.replaceChildren();
  els.summary.textContent = "Uploading…";
  els.progress.hidden = false;
  els.progress.value = 0;
  try {
    const up = await upload(file);
    state.uploadUrl = up.url;
    els.app.dataset.upload = up.url;
    els.progress.hidden = true;
    await refreshPlan();
  } catch (err) {
    els.progress.hidden = true;
    els.summary.textContent = "No plan: the upload failed.";
    showError(err.message);
  }
}

els.file.addEventListener("change", () => handleFile(els.file.files[0]));
for (const type of ["dragenter", "dragover"]) {
  els.drop.addEventListener(type, (e) => {
    e.preventDefault();
    els.drop.classList.add("over");
  });
}
for (const type of ["dragleave", "drop"]) els.drop.addEventListener(type, () => els.drop.classList.remove("over"));
els.drop.addEventListener("drop", (e) => {
  e.preventDefault();
  handleFile(e.dataTransfer.files[0]);
});

// ---------- plan ----------

function videoOptions() {
  const options = { ...RESOLUTIONS[els.resolution.value] };
  const fps = Number(els.fps.value);
  if (els.fps.value !== "" && fps > 0) options.fps = fps;
  const maxFrames = Number(els.maxFrames.value);
  if (els.maxFrames.value !== "" && maxFrames > 0) options.max_frames = Math.round(maxFrames);
  const prune = Number(els.prune?.value);
  if (prune > 0) options.prune = prune;
  return options;
}

function userContent(question) {
  const content = [];
  if (state.uploadUrl) content.push({ type: "video_url", video_url: { url: state.uploadUrl, ...videoOptions() } });
  content.push({ type: "text", text: question });
  return content;
}

async function refreshPlan() {
  if (!state.uploadUrl) return;
  const seq = ++state.planSeq;
  els.summary.textContent = "Sampling frames…";
  els.frames.setAttribute("aria-busy", "true");
  try {
    const r = await fetch("/v1/plan", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model: state.modelId, messages: [{ role: "user", content: userContent(els.question.value || "?") }], max_tokens: Number(els.maxTokens.value) || undefined }),
    });
    if (!r.ok) throw new Error(await apiError(r));
    const plan = await r.json();
    if (seq !== state.planSeq) return; // a newer plan is on its way
    renderPlan(plan);
    showError("");
  } catch (err) {
    if (seq !== state.planSeq) return;
    els.summary.textContent = "No plan for these settings.";
    els.frames.replaceChildren();
    showError(err.message);
  } finally {
    if (seq === state.planSeq) els.frames.removeAttribute("aria-busy");
  }
}

/** Seconds as people read them: 4.2 s, 35 s, 3 min 10 s, 1 h 5 min. */
function formatDuration(s) {
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

function formatBytes(b) {
  return b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(1)} GiB` : `${Math.round(b / 2 ** 20)} MiB`;
}

/** The plan's cost estimate on the server's machine and the limits that shaped it. */
function renderEstimate(plan) {
  const e = plan.estimate;
  els.cost.hidden = !e;
  if (e) {
    const rates = e.rates.source === "measured" ? "rates measured on the server" : "default rates (not measured on the server)";
    let text = `Estimated: first token after ${formatDuration(e.seconds.first_token)} (vision ${formatDuration(e.seconds.vision)}, prefill ${formatDuration(e.seconds.prefill)}), up to ${formatDuration(e.seconds.total)} with ${plan.max_new_tokens.toLocaleString()} new tokens · memory ${formatBytes(e.memory_bytes)} · ${rates}.`;
    if (e.slow) text += ` This will take minutes${e.suggestion ? `; to get the first token within a minute: ${e.suggestion.replace(/--([a-z-]+)/g, (_, f) => f.replace(/-/g, " "))}` : ""}.`;
    if (!e.memory_fits && e.memory_advice) text += ` Not enough memory: ${e.memory_advice}.`;
    els.cost.textContent = text;
    els.cost.dataset.slow = String(Boolean(e.slow));
    els.cost.dataset.seconds = String(e.seconds.total);
  }
  const limits = plan.limits || [];
  els.limits.hidden = limits.length === 0;
  els.limits.replaceChildren(...limits.map((l) => Object.assign(document.createElement("li"), { textContent: l.note })));
}

function renderPlan(plan) {
  renderEstimate(plan);
  const v = plan.visuals.find((x) => x.kind === "video");
  if (!v) return;
  const strong = (text) => Object.assign(document.createElement("strong"), { textContent: text });
  els.summary.replaceChildren(
    strong(`${v.frames.length} frames`),
    ` at ${v.sample_fps ? +v.sample_fps.toFixed(2) : "?"} fps · `,
    strong(`${v.width}×${v.height}`),
    " px · ",
    strong(`${v.tokens.toLocaleString()} visual tokens`),
    v.prune ? ` (pruning ${Math.round(v.prune.rate * 100)}%: ${v.prune.kept_tokens.toLocaleString()} kept, chosen by the model)` : "",
    ` · prompt ${plan.prompt_tokens.toLocaleString()} of ${plan.context_length.toLocaleString()} tokens ${plan.fits ? "✓" : "— too long"}`,
  );
  els.summary.dataset.tokens = String(v.tokens);
  if (!plan.fits && plan.problem) showError(plan.problem);
  const items = v.frames.map((f) => {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.title = `Frame ${f.index} at ${formatTime(f.time)} — jump there`;
    if (f.thumbnail) {
      const img = document.createElement("img");
      img.src = f.thumbnail;
      img.alt = `Frame ${f.index} at ${f.time.toFixed(2)} s`;
      img.loading = "lazy";
      b.append(img);
    }
    const cap = document.createElement("span");
    cap.textContent = `${formatTime(f.time)} · #${f.index}`;
    b.append(cap);
    b.addEventListener("click", () => seek(f.time));
    li.append(b);
    return li;
  });
  els.frames.replaceChildren(...items);
}

/**
 * After an answer: each frame thumbnail shaded by the share of its tokens the model kept (EVS pruning, InternVL-Flash,
 * VideoLLaMA3's DiffFP), with the share in its caption; unshaded when nothing was decided per frame.
 */
function shadeFrames(visualTokens) {
  const items = [...els.frames.querySelectorAll("li")];
  const kept = keptPerFrame(visualTokens, 0, items.length); // the page sends one video, the request's first visual
  items.forEach((li, i) => {
    const k = kept?.[i];
    li.classList.toggle("reduced", k !== undefined && k < 1);
    li.style.setProperty("--kept", k === undefined ? "1" : String(k));
    const button = li.querySelector("button");
    if (button) button.dataset.kept = k === undefined ? "" : `${Math.round(k * 100)}% kept`;
  });
}

let planTimer;
els.planForm.addEventListener("input", () => {
  clearTimeout(planTimer);
  planTimer = setTimeout(refreshPlan, 350);
});
els.planForm.addEventListener("submit", (e) => {
  e.preventDefault();
  refreshPlan();
});

// ---------- ask ----------

function setBusy(busy) {
  els.ask.disabled = busy;
  els.stop.hidden = !busy;
  els.answer.setAttribute("aria-busy", String(busy));
}

function renderAnswer(content, reasoningField, done) {
  const split = splitThink(content);
  const reasoning = [reasoningField, split.reasoning].filter(Boolean).join("\n");
  els.thinking.hidden = !reasoning && !split.thinking;
  if (!els.thinking.hidden) {
    els.reasoning.textContent = reasoning;
    els.thinking.querySelector("summary").textContent = split.thinking && !done ? "Thinking…" : "Thinking";
  }
  renderWithTimestamps(els.answerText, split.answer);
}

async function ask(question) {
  showError("");
  state.askController?.abort();
  const controller = new AbortController();
  state.askController = controller;
  els.answer.hidden = false;
  els.answer.dataset.state = "streaming";
  els.thinking.hidden = true;
  els.thinking.open = false;
  els.answerText.replaceChildren();
  els.stats.textContent = "";
  setBusy(true);
  let content = "";
  let reasoning = "";
  const t0 = performance.now();
  let tFirst;
  let usage;
  let answerEvents; // a message that carries events (response_format videolm_events) draws them under the video
  try {
    const r = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        model: state.modelId,
        messages: [{ role: "user", content: userContent(question) }],
        stream: true,
        stream_options: { include_usage: true },
        max_tokens: Number(els.maxTokens.value) || undefined,
      }),
      signal: controller.signal,
    });
    if (!r.ok) throw new Error(await apiError(r));
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) !== -1) {
        const event = buffer.slice(0, cut).trim();
        buffer = buffer.slice(cut + 2);
        if (!event.startsWith("data: ")) continue;
        const data = event.slice(6);
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        if (chunk.usage) usage = chunk.usage;
        for (const choice of chunk.choices ?? []) {
          const d = choice.delta ?? {};
          if (d.content) content += d.content;
          if (d.reasoning_content) reasoning += d.reasoning_content;
          if (d.reasoning) reasoning += d.reasoning;
          const carried = d.events ?? choice.message?.events;
          if (Array.isArray(carried)) answerEvents = { events: carried, ...(d.videolm_events ?? choice.message?.videolm_events ?? {}) };
          if ((d.content || d.reasoning_content || d.reasoning) && tFirst === undefined) tFirst = performance.now();
        }
        renderAnswer(content, reasoning, false);
      }
    }
    renderAnswer(content, reasoning, true);
    els.answer.dataset.state = "done";
    if (answerEvents) eventsView.show(answerEvents, { videoName: state.fileName, status: `From the answer: ${resultSummary(answerEvents)}` });
    if (usage) {
      const seconds = (performance.now() - (tFirst ?? t0)) / 1000;
      const saving = savingText(usage.videolm_visual_tokens);
      els.stats.textContent = `${usage.completion_tokens} tokens · ${usage.prompt_tokens.toLocaleString()} prompt tokens · first token after ${(((tFirst ?? t0) - t0) / 1000).toFixed(1)} s · ${seconds > 0 ? (usage.completion_tokens / seconds).toFixed(1) : "–"} tokens/s${saving ? ` · ${saving}` : ""}`;
      shadeFrames(usage.videolm_visual_tokens);
    }
    if (!content && !reasoning) els.answerText.textContent = "(the model gave an empty answer)";
  } catch (err) {
    renderAnswer(content, reasoning, true);
    if (controller.signal.aborted) {
      els.answer.dataset.state = "stopped";
      els.stats.textContent = "Stopped.";
    } else {
      els.answer.dataset.state = "error";
      showError(err.message);
    }
  } finally {
    if (state.askController === controller) {
      state.askController = undefined;
      setBusy(false);
    }
  }
}

els.askForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const q = els.question.value.trim();
  if (!q) {
    showError("Type a question first.");
    els.question.focus();
    return;
  }
  ask(q);
});
els.question.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    els.askForm.requestSubmit();
  }
});
els.stop.addEventListener("click", () => state.askController?.abort());

// ---------- events ----------

/** Asks /v1/events for the video's moments matching `query` (grounding) or all its events (dense), and draws them. */
async function requestEvents(task, query) {
  if (!state.uploadUrl) {
    showError("Choose a video first.");
    return;
  }
  showError("");
  state.eventsController?.abort();
  const controller = new AbortController();
  state.eventsController = controller;
  els.findMoments.disabled = els.listEvents.disabled = true;
  els.eventsStatus.textContent = task === "grounding" ? "Finding the moments…" : "Listing the events…";
  try {
    const r = await fetch("/v1/events", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model: state.modelId, video: { url: state.uploadUrl, ...videoOptions() }, task, ...(query ? { query } : {}), max_tokens: Number(els.maxTokens.value) || undefined }),
      signal: controller.signal,
    });
    if (!r.ok) throw new Error(await apiError(r));
    const result = await r.json();
    eventsView.show(result, { videoName: state.fileName, status: resultSummary(result) });
  } catch (err) {
    if (controller.signal.aborted) return;
    els.eventsStatus.textContent = "";
    showError(err.message);
  } finally {
    if (state.eventsController === controller) {
      state.eventsController = undefined;
      els.findMoments.disabled = els.listEvents.disabled = false;
    }
  }
}

els.eventsForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const q = els.eventsQuery.value.trim();
  if (!q) {
    showError("Type what to find first (e.g. the ball stops), or list every event.");
    els.eventsQuery.focus();
    return;
  }
  requestEvents("grounding", q);
});
els.listEvents.addEventListener("click", () => requestEvents("dense"));

loadModel();
