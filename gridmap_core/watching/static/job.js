"use strict";
// One job's page: its fields, CPU and memory charts and log tail, refreshed every two
// seconds while the job has not ended.

const token = new URLSearchParams(location.search).get("token") || "";
const query = "token=" + encodeURIComponent(token);
const index = location.pathname.split("/").pop();
const ended = new Set(["done", "failed", "dead", "cancelled"]);
let shown = -1;

document.getElementById("back").href = "/?" + query;

function set(id, value) {
  const number = typeof value === "number" && !Number.isInteger(value);
  document.getElementById(id).textContent =
    value === null || value === undefined ? "" : number ? value.toFixed(1) : String(value);
}

// A field with nothing to say is not shown: a job that lives has no cause of death, and
// one that returned has no error.
function optional(id, value) {
  set(id, value);
  const empty = !value;
  document.getElementById(id).hidden = empty;
  document.querySelector('dt[data-for="' + id + '"]').hidden = empty;
}

function connection(message, live) {
  const node = document.getElementById("connection");
  node.textContent = message;
  node.classList.toggle("live", live);
}

async function poll() {
  let wait = 2000;
  try {
    const response = await fetch("/api/job/" + index + "?" + query, {cache: "no-store"});
    if (!response.ok) {
      connection("refused: " + response.status + " " + (await response.text()), false);
      wait = 5000;
    } else {
      const job = await response.json();
      document.getElementById("name").textContent = job.name;
      document.title = "gridmap: " + job.name;
      document.body.dataset.state = job.state;
      for (const field of ["state", "host", "id", "cpu", "memory", "resubmits"]) {
        set(field, job[field]);
      }
      optional("waiting", job.waiting);
      optional("warning", job.warning);
      optional("cause", job.cause);
      optional("error", job.error);
      optional("history", (job.history || []).map(
        (cause, n) => "attempt " + (n + 1) + " died: " + cause).join("\n"));
      set("log", job.log_tail);
      set("traceback", job.traceback);
      document.getElementById("traceback-box").hidden = !job.traceback;
      if (job.version !== shown) {
        shown = job.version;
        for (const chart of ["cpu", "memory"]) {
          document.getElementById(chart + "-chart").src =
            "/api/job/" + index + "/" + chart + ".svg?" + query + "&v=" + shown;
        }
      }
      connection(ended.has(job.state) ? "ended" : "live", true);
      if (ended.has(job.state)) return;
    }
  } catch (error) {
    connection("disconnected: the submitting process no longer answers (the map may have ended)", false);
    wait = 3000;
  }
  setTimeout(poll, wait);
}

poll();
