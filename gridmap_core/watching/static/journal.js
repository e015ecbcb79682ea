"use strict";
// gridmap watch: the figures on top of a map's page (state, age, counts, progress bar
// and throughput chart) refreshed every two seconds from /api/summary. The rest of the
// page is drawn by the server; a reload shows the latest rows.

const token = new URLSearchParams(location.search).get("token") || "";
const query = "token=" + encodeURIComponent(token);
const order = ["succeeded", "failed", "dead", "cancelled", "running", "queued"];
let lastDone = -1;

function duration(seconds) {
  const whole = Math.floor(seconds);
  if (whole < 60) return (seconds >= 10 || seconds === whole ? seconds.toFixed(0) : seconds.toFixed(1)) + " s";
  const pad = (n) => String(n).padStart(2, "0");
  let minutes = Math.floor(whole / 60);
  if (minutes < 60) return minutes + " min" + (whole % 60 ? " " + pad(whole % 60) + " s" : "");
  const hours = Math.floor(minutes / 60);
  minutes %= 60;
  if (hours < 24) return hours + " h" + (minutes ? " " + pad(minutes) + " min" : "");
  return Math.floor(hours / 24) + " d" + (hours % 24 ? " " + pad(hours % 24) + " h" : "");
}

function setText(id, value) {
  const element = document.getElementById(id);
  if (element) element.textContent = String(value);
}

function show(data) {
  const state = document.getElementById("state");
  if (state) { state.textContent = data.state; state.dataset.state = data.state; }
  setText("seconds-label", data.ended === null ? "Age" : "Wall time");
  setText("seconds", duration(data.seconds));
  setText("monitor", data.monitor || "none: the map ended");
  setText("done", data.done);
  setText("total", data.total);
  for (const [name, count] of Object.entries(data.counts)) setText("count-" + name, count);
  const bar = document.getElementById("progress");
  if (bar) {
    const width = Number(bar.getAttribute("width"));
    let x = 0;
    for (const name of order) {
      const share = width * (data.counts[name] || 0) / Math.max(data.total, 1);
      const rect = document.getElementById("bar-" + name);
      if (rect) { rect.setAttribute("x", x.toFixed(2)); rect.setAttribute("width", share.toFixed(2)); }
      x += share;
    }
  }
  const chart = document.getElementById("throughput");
  if (chart && data.done !== lastDone) {
    chart.src = "/api/throughput.svg?" + query + "&at=" + Date.now();
  }
  lastDone = data.done;
}

async function refresh() {
  const connection = document.getElementById("connection");
  try {
    const response = await fetch("/api/summary?" + query, {cache: "no-store"});
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || response.status);
    show(data);
    if (connection) { connection.textContent = "live"; connection.className = "connection live"; }
  } catch (error) {
    if (connection) {
      connection.textContent = "not refreshed: " + (error.message || error);
      connection.className = "connection";
    }
  }
}

if (document.body.dataset.view === "map" || document.body.dataset.view === "job") {
  lastDone = Number((document.getElementById("done") || {}).textContent || -1);
  setInterval(refresh, 2000);
  refresh();
}
