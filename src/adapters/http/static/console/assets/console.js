// The web console: one page over the public HTTP API (see API.md), no framework.
// Every text from the service is put in the page with textContent, never as HTML.
"use strict";

(() => {
  const KEY_STORAGE = "guideline-ingest.api-key";
  const MAX_CHARS = 200000;
  const RECONNECT_MS = 1000;
  const PAGE_SIZE = 10;
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);
  const STEPS = [
    ["queue", "Waiting for a worker"],
    ["summarize", "Summarize"],
    ["checklist", "Checklist"],
  ];
  const numbers = new Intl.NumberFormat("en");
  const $ = (id) => document.getElementById(id);

  // --- the API --------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, problem) {
      super(problem.detail || problem.title || `HTTP ${status}`);
      this.status = status;
      this.problem = problem;
    }
  }

  const storedKey = () => sessionStorage.getItem(KEY_STORAGE);

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    const key = storedKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    const init = { method, headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError(0, {
        title: "No answer",
        detail: "The service did not answer. Is it running, and is the network up?",
      });
    }
    if (response.status === 204) return null;
    const type = response.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await response.json().catch(() => null) : null;
    if (!response.ok) {
      const error = new ApiError(
        response.status,
        data && typeof data === "object" ? data : { title: response.statusText, detail: "" },
      );
      if (response.status === 401) keyRefused(error);
      throw error;
    }
    return data;
  }

  const sleep = (ms, signal) =>
    new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
    });

  // Follows one job until it ends: calls onJob with each state seen, from the event
  // stream GET /jobs/{id}/events. It is read with fetch(), not EventSource, because
  // EventSource cannot send the Authorization header (and the key never goes in a URL).
  // A dropped stream is opened again after a second; it ends after the finished state.
  async function followJob(eventId, onJob, signal) {
    let last = null;
    while (!signal.aborted) {
      last = (await readEvents(eventId, onJob, signal)) || last;
      if (signal.aborted || (last && TERMINAL.has(last.status))) return;
      await sleep(RECONNECT_MS, signal);
    }
  }

  async function readEvents(eventId, onJob, signal) {
    const headers = { Accept: "text/event-stream" };
    const key = storedKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    let response;
    try {
      response = await fetch(`/jobs/${encodeURIComponent(eventId)}/events`, {
        headers, signal, cache: "no-store", credentials: "omit",
      });
    } catch {
      return null; // aborted, or the network: followJob decides
    }
    if (!response.ok) {
      const data = await response.json().catch(() => null);
      const error = new ApiError(response.status, data || { title: response.statusText, detail: "" });
      if (response.status === 401) keyRefused(error);
      throw error;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let last = null;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return last;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block.split("\n").filter((line) => line.startsWith("data:"))
            .map((line) => line.slice(5).replace(/^ /, "")).join("\n");
          if (data && !signal.aborted) {
            last = JSON.parse(data);
            onJob(last);
          }
        }
      }
    } catch {
      return last; // aborted or dropped
    }
  }

  // --- helpers --------------------------------------------------------------------------

  // The API counts Unicode code points; a JavaScript string's length counts UTF-16 units.
  const codePoints = (text) => text.length - (text.match(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g) || []).length;

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function seconds(ms) {
    return ms < 10000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
  }

  function showProblem(box, error) {
    box.replaceChildren();
    const problem = error.problem || { title: "Error", detail: String(error) };
    const status = error.status ? `${error.status} ` : "";
    box.append(element("strong", "", `${status}${problem.title || "Error"}`));
    if (problem.detail) box.append(element("p", "", problem.detail));
    if (Array.isArray(problem.errors) && problem.errors.length) {
      const list = element("ul");
      for (const field of problem.errors) {
        const where = field.key ? `${field.key}: ` : "";
        list.append(element("li", "", `${where}${field.message}`));
      }
      box.append(list);
    }
    box.hidden = false;
  }

  function hideProblem(box) {
    box.hidden = true;
    box.replaceChildren();
  }

  function titleOf(job) {
    if (job.metadata && job.metadata.title) return job.metadata.title;
    const line = (job.input_text || "").split("\n").map((l) => l.replace(/^[#\s]+/, "").trim())
      .find((l) => l.length > 0);
    if (!line) return "Guideline";
    return line.length > 80 ? `${line.slice(0, 79)}…` : line;
  }

  function markdownOf(job, ticked) {
    const lines = [`# ${titleOf(job)}`, "", "## Summary", "", job.summary || "", "", "## Checklist", ""];
    (job.checklist || []).forEach((item, index) => {
      lines.push(`- [${ticked.has(index) ? "x" : " "}] ${item}`);
    });
    return `${lines.join("\n")}\n`;
  }

  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return;
    }
    const area = element("textarea", "visually-hidden");
    area.value = text;
    document.body.append(area);
    area.select();
    const copied = document.execCommand("copy");
    area.remove();
    if (!copied) throw new Error("copy refused");
  }

  function download(name, text, type) {
    const url = URL.createObjectURL(new Blob([text], { type }));
    const link = element("a");
    link.href = url;
    link.download = name;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  function confirmAction(title, text, yesLabel) {
    const dialog = $("confirm");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-yes").textContent = yesLabel;
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
      dialog.returnValue = "";
      dialog.showModal();
    });
  }

  // --- the key --------------------------------------------------------------------------

  function keyRefused(error) {
    sessionStorage.removeItem(KEY_STORAGE);
    const detail = error.problem && error.problem.detail ? ` (${error.problem.detail})` : "";
    setKeyStatus(`The service refused this key${detail}. Check it and enter it again.`, "bad");
    updateKeyControls();
  }

  function setKeyStatus(text, tone) {
    const status = $("key-status");
    status.textContent = text;
    status.dataset.tone = tone || "";
  }

  function updateKeyControls() {
    const has = Boolean(storedKey());
    $("forget-key").disabled = !has;
    $("key-input").placeholder = has ? "Key in use for this tab" : "gi_…";
    updateSubmit();
  }

  async function useKey(event) {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) {
      setKeyStatus("Enter a key first.", "bad");
      return;
    }
    sessionStorage.setItem(KEY_STORAGE, key);
    $("key-input").value = "";
    updateKeyControls();
    setKeyStatus("Checking the key…");
    if (await loadHistory(null)) setKeyStatus("Key accepted; it is kept for this tab only.", "good");
  }

  function forgetKey() {
    sessionStorage.removeItem(KEY_STORAGE);
    stopFollowing();
    $("job-panel").hidden = true;
    $("history-list").replaceChildren();
    $("history-empty").hidden = true;
    pages.cursors = [null];
    updatePager(null);
    updateKeyControls();
    setKeyStatus("Key forgotten.");
    $("key-input").focus();
  }

  // --- submit ---------------------------------------------------------------------------

  function updateCount() {
    const count = codePoints($("guideline-text").value);
    const label = $("char-count");
    label.textContent = `${numbers.format(count)} / ${numbers.format(MAX_CHARS)} characters`;
    label.dataset.tone = count > MAX_CHARS ? "bad" : "";
    if (count > MAX_CHARS) label.textContent += ` (${numbers.format(count - MAX_CHARS)} too many)`;
    updateSubmit();
  }

  function updateSubmit() {
    const text = $("guideline-text").value;
    $("submit-button").disabled = !storedKey() || text.trim().length === 0;
  }

  async function pickFile() {
    const file = $("guideline-file").files[0];
    if (!file) return;
    hideProblem($("submit-problem"));
    if (!/\.(txt|md)$/i.test(file.name)) {
      showProblem($("submit-problem"), { problem: { title: "Not a text file", detail: "Pick a .txt or .md file." } });
      return;
    }
    $("guideline-text").value = await file.text();
    $("guideline-text").dataset.file = file.name;
    updateCount();
  }

  async function submit(event) {
    event.preventDefault();
    const box = $("submit-problem");
    hideProblem(box);
    const button = $("submit-button");
    button.disabled = true;
    const body = { input_text: $("guideline-text").value };
    const file = $("guideline-text").dataset.file;
    if (file) body.metadata = { title: file.slice(0, 512) };
    try {
      const job = await api("POST", "/jobs", body);
      openJob(job, { live: true });
      loadHistory(pages.cursors[pages.page]);
    } catch (error) {
      showProblem(box, error);
    } finally {
      updateSubmit();
    }
  }

  // --- the job panel --------------------------------------------------------------------

  const current = { job: null, controller: null, timings: {}, phase: null, ticked: new Set(), live: false };

  function phaseOf(job) {
    if (job.status === "pending") return "queue";
    if (job.status === "processing") return job.step || "queue";
    return job.status;
  }

  // Client-side step times: a phase starts when it is first seen and ends when another is.
  function observe(job) {
    const phase = phaseOf(job);
    const now = performance.now();
    if (phase === current.phase) return;
    const previous = current.timings[current.phase];
    if (previous && previous.end === undefined) previous.end = now;
    if (!TERMINAL.has(phase)) current.timings[phase] = { start: now };
    current.phase = phase;
  }

  function stepState(job, step) {
    const failed = job.status === "failed" ? "failed" : job.status === "cancelled" ? "cancelled" : null;
    if (step === "queue") {
      if (job.status === "pending") return "running";
      return job.started_at || job.summary !== null || job.status === "processing" ? "done" : failed || "waiting";
    }
    const output = step === "summarize" ? job.summary : job.checklist;
    if (output !== null) return "done";
    if (job.status === "processing" && job.step === step) return "running";
    if (failed && (step === "summarize" || job.summary !== null)) return failed;
    return "waiting";
  }

  // A step's time runs from the event that says it began to the next one (measured
  // here, in the browser). The time spent waiting for a worker comes from the server's
  // own timestamps.
  function stepTime(job, step, state) {
    if (step === "queue" && job.started_at) {
      return seconds(Math.max(0, Date.parse(job.started_at) - Date.parse(job.created_at)));
    }
    const timing = current.timings[step];
    if (timing && timing.end !== undefined) {
      return seconds(timing.end - timing.start);
    }
    if (timing && state === "running") return `${seconds(performance.now() - timing.start)} so far`;
    return "";
  }

  const STATE_WORDS = {
    done: "done", running: "running", waiting: "waiting", failed: "failed", cancelled: "cancelled",
  };

  function renderSteps(job) {
    const list = $("job-steps");
    list.replaceChildren();
    for (const [step, label] of STEPS) {
      const state = stepState(job, step);
      const item = element("li", `step ${state}`);
      item.dataset.step = step;
      item.dataset.state = state;
      item.append(element("span", "step-mark", ""), element("span", "step-name", label));
      item.append(element("span", "step-state", STATE_WORDS[state]));
      item.append(element("span", "step-time", stepTime(job, step, state)));
      list.append(item);
    }
    if (job.started_at && job.finished_at) {
      const total = Date.parse(job.finished_at) - Date.parse(job.created_at);
      const item = element("li", "step total");
      item.append(element("span", "step-mark", ""), element("span", "step-name", "Total (server)"));
      item.append(element("span", "step-state", job.status), element("span", "step-time", seconds(total)));
      list.append(item);
    }
  }

  function renderChecklist(job) {
    const list = $("job-checklist");
    list.replaceChildren();
    (job.checklist || []).forEach((text, index) => {
      const item = element("li");
      const id = `check-${index}`;
      const box = element("input");
      box.type = "checkbox";
      box.id = id;
      box.checked = current.ticked.has(index);
      box.addEventListener("change", () => {
        if (box.checked) current.ticked.add(index);
        else current.ticked.delete(index);
      });
      const label = element("label", "", text);
      label.htmlFor = id;
      item.append(box, label);
      list.append(item);
    });
  }

  function renderJob(job) {
    current.job = job;
    const status = $("job-status");
    status.textContent = job.step ? `${job.status} · ${job.step}` : job.status;
    status.dataset.status = job.status;
    $("job-heading").textContent = titleOf(job);
    $("job-id").textContent = `Job ${job.event_id} · submitted ${new Date(job.created_at).toLocaleString()}`;
    renderSteps(job);

    const error = $("job-error");
    if (job.status === "failed" && job.error) {
      showProblem(error, { problem: { title: `Failed: ${job.error.code}`, detail: job.error.message } });
    } else {
      hideProblem(error);
    }

    const hasResult = job.summary !== null || job.checklist !== null;
    $("job-result").hidden = !hasResult;
    $("job-summary").textContent = job.summary || "…";
    if (JSON.stringify(job.checklist) !== $("job-checklist").dataset.items) {
      $("job-checklist").dataset.items = JSON.stringify(job.checklist);
      renderChecklist(job);
    }
    const usage = job.usage || { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
    $("job-usage").textContent = `Tokens: ${numbers.format(usage.prompt_tokens)} prompt + ` +
      `${numbers.format(usage.completion_tokens)} completion = ${numbers.format(usage.total_tokens)}`;

    const completed = job.status === "completed";
    $("copy-md").hidden = !completed;
    $("download-json").hidden = !completed;
    $("job-cancel").hidden = TERMINAL.has(job.status);
    $("job-retry").hidden = !(job.status === "failed" || job.status === "cancelled");
    $("job-delete").hidden = false;
  }

  function stopFollowing() {
    if (current.controller) current.controller.abort();
    current.controller = null;
  }

  function follow(job) {
    stopFollowing();
    const controller = new AbortController();
    current.controller = controller;
    followJob(job.event_id, (event) => {
      if (controller.signal.aborted) return;
      const seen = { ...current.job, ...event }; // the stream's jobs carry no input_text
      observe(seen);
      renderJob(seen);
      if (TERMINAL.has(seen.status)) {
        setNotice(`Job ${seen.status}.`);
        loadHistory(pages.cursors[pages.page]);
      }
    }, controller.signal).catch((error) => {
      if (controller.signal.aborted) return;
      if (error.status === 404) setNotice("This job no longer exists.");
      else setNotice(`Lost track of the job: ${error.message}`);
    });
  }

  function setNotice(text) {
    $("job-notice").textContent = text;
  }

  function openJob(job, { live = false, focus = false } = {}) {
    stopFollowing();
    current.timings = {};
    current.phase = null;
    current.ticked = new Set();
    current.live = live;
    $("job-checklist").dataset.items = "";
    setNotice("");
    observe(job);
    renderJob(job);
    $("job-panel").hidden = false;
    if (focus) $("job-heading").focus();
    if (!TERMINAL.has(job.status)) follow(job);
  }

  async function openById(eventId) {
    try {
      const job = await api("GET", `/jobs/${encodeURIComponent(eventId)}`);
      openJob(job, { focus: true });
    } catch (error) {
      showProblem($("history-problem"), error);
    }
  }

  async function jobAction(kind) {
    const job = current.job;
    if (!job) return;
    if (kind === "cancel" &&
        !(await confirmAction("Cancel this job?", "Its worker stops at the next step.", "Cancel job"))) return;
    if (kind === "delete" &&
        !(await confirmAction("Delete this job?", "Its text and results are erased for good.", "Delete job"))) return;
    try {
      if (kind === "delete") {
        await api("DELETE", `/jobs/${encodeURIComponent(job.event_id)}`);
        stopFollowing();
        $("job-panel").hidden = true;
        setKeyStatus("");
        announce("Job deleted.");
      } else {
        const updated = await api("POST", `/jobs/${encodeURIComponent(job.event_id)}/${kind}`);
        if (kind === "retry") {
          current.timings = {};
          current.phase = null;
        }
        observe(updated);
        renderJob(updated);
        setNotice(kind === "retry" ? "Job retried." : "Job cancelled.");
        if (!TERMINAL.has(updated.status)) follow(updated);
      }
    } catch (error) {
      setNotice(`${error.status || ""} ${error.problem ? error.problem.title : ""}: ${error.message}`.trim());
    }
    loadHistory(pages.cursors[pages.page]);
  }

  function announce(text) {
    $("history-notice").textContent = text;
  }

  // --- history --------------------------------------------------------------------------

  const pages = { cursors: [null], page: 0, loading: 0 };

  function historyRow(job) {
    const item = element("li");
    const button = element("button", "history-row");
    button.type = "button";
    button.dataset.eventId = job.event_id;
    const badge = element("span", "badge", job.status);
    badge.dataset.status = job.status;
    const title = job.metadata && job.metadata.title ? job.metadata.title
      : job.summary ? job.summary : "(no summary yet)";
    const text = element("span", "history-title", title.length > 90 ? `${title.slice(0, 89)}…` : title);
    const when = element("span", "history-when", new Date(job.created_at).toLocaleString());
    button.append(badge, text, when);
    button.setAttribute("aria-label", `Open job from ${when.textContent}, ${job.status}: ${text.textContent}`);
    button.addEventListener("click", () => openById(job.event_id));
    item.append(button);
    return item;
  }

  async function loadHistory(cursor) {
    if (!storedKey()) return false;
    const loading = ++pages.loading;
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    const status = $("history-status").value;
    if (status) params.append("status", status);
    if (cursor) params.set("cursor", cursor);
    hideProblem($("history-problem"));
    try {
      const page = await api("GET", `/jobs?${params}`);
      if (loading !== pages.loading) return true;
      const list = $("history-list");
      list.replaceChildren(...page.items.map(historyRow));
      $("history-empty").hidden = page.items.length > 0;
      updatePager(page.next_cursor);
      return true;
    } catch (error) {
      if (error.status !== 401) showProblem($("history-problem"), error);
      return false;
    }
  }

  function updatePager(nextCursor) {
    pages.next = nextCursor;
    $("history-next").disabled = !nextCursor;
    $("history-first").disabled = pages.page === 0;
    $("history-page").textContent = `Page ${pages.page + 1}`;
  }

  function pageTo(index) {
    if (index > pages.cursors.length - 1) pages.cursors.push(pages.next);
    pages.page = index;
    loadHistory(pages.cursors[index]);
  }

  // --- wiring ---------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("key-form").addEventListener("submit", useKey);
    $("forget-key").addEventListener("click", forgetKey);
    $("guideline-text").addEventListener("input", () => {
      delete $("guideline-text").dataset.file;
      updateCount();
    });
    $("guideline-file").addEventListener("change", pickFile);
    $("submit-form").addEventListener("submit", submit);
    $("copy-md").addEventListener("click", async () => {
      try {
        await copyText(markdownOf(current.job, current.ticked));
        setNotice("Copied as Markdown.");
      } catch {
        setNotice("The browser did not allow copying.");
      }
    });
    $("download-json").addEventListener("click", () => {
      download(`job-${current.job.event_id}.json`, `${JSON.stringify(current.job, null, 2)}\n`, "application/json");
      setNotice("Downloaded.");
    });
    $("job-cancel").addEventListener("click", () => jobAction("cancel"));
    $("job-retry").addEventListener("click", () => jobAction("retry"));
    $("job-delete").addEventListener("click", () => jobAction("delete"));
    $("history-refresh").addEventListener("click", () => loadHistory(pages.cursors[pages.page]));
    $("history-status").addEventListener("change", () => {
      $("history-list").replaceChildren(); // no stale rows while the new list loads
      $("history-next").disabled = true;
      pages.cursors = [null];
      pages.page = 0;
      loadHistory(null);
    });
    $("history-next").addEventListener("click", () => pageTo(pages.page + 1));
    $("history-first").addEventListener("click", () => {
      pages.cursors = [null];
      pageTo(0);
    });
    updateKeyControls();
    updateCount();
    if (storedKey()) {
      setKeyStatus("Using the key saved in this tab.");
      loadHistory(null);
    }
  });
})();
