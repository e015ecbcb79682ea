"use strict";
// The table of every job of the map, kept up to date by asking the server, once a
// second, for the rows that changed since the version already shown.

const token = new URLSearchParams(location.search).get("token") || "";
const query = "token=" + encodeURIComponent(token);
const columns = ["index", "name", "state", "host", "id", "cpu", "memory", "resubmits", "cause",
                 "note"];
const numeric = new Set(["index", "cpu", "memory", "resubmits"]);
const rows = new Map();
let version = 0;

function text(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "number" && !Number.isInteger(value) ? value.toFixed(1) : String(value);
}

function show(job) {
  let tr = rows.get(job.index);
  if (!tr) {
    tr = document.createElement("tr");
    tr.id = "job-" + job.index;
    for (const column of columns) {
      const td = document.createElement("td");
      td.className = column + (numeric.has(column) ? " number" : "");
      if (column === "name") {
        const link = document.createElement("a");
        link.href = "/job/" + job.index + "?" + query;
        td.appendChild(link);
      }
      tr.appendChild(td);
    }
    rows.set(job.index, tr);
    document.querySelector("#jobs tbody").appendChild(tr);
  }
  tr.dataset.state = job.state;
  // The note: why a queued job waits, or what the monitor warns of a running one.
  const note = job.waiting || job.warning || "";
  columns.forEach((column, i) => {
    const td = tr.children[i];
    (td.firstElementChild || td).textContent = text(column === "note" ? note : job[column]);
  });
}

function summarize(data) {
  const title = (data.name ? data.name + " on " : "") + (data.backend || "gridmap");
  document.getElementById("title").textContent = title;
  document.title = "gridmap: " + title;
  const parts = Object.entries(data.counts).filter(([, n]) => n > 0)
    .map(([state, n]) => n + " " + (state === "submitted" ? "queued" : state));
  const seconds = Math.round(data.finished ? data.finished.wall_time : Date.now() / 1000 - data.started);
  const end = data.finished ? "finished in " + seconds + " s" : "running for " + seconds + " s";
  const summary = document.getElementById("summary");
  summary.textContent = data.total + " jobs: " + (parts.join(", ") || "none yet") + "; " + end;
  summary.dataset.finished = data.finished ? "yes" : "no";
}

function connection(message, live) {
  const node = document.getElementById("connection");
  node.textContent = message;
  node.classList.toggle("live", live);
}

async function poll() {
  let wait = 1000;
  try {
    const response = await fetch("/api/jobs?since=" + version + "&" + query, {cache: "no-store"});
    if (!response.ok) {
      connection("refused: " + response.status + " " + (await response.text()), false);
      wait = 5000;
    } else {
      const data = await response.json();
      data.jobs.forEach(show);
      summarize(data);
      version = data.version;
      connection("live", true);
    }
  } catch (error) {
    connection("disconnected: the submitting process no longer answers (the map may have ended)", false);
    wait = 3000;
  }
  setTimeout(poll, wait);
}

poll();
