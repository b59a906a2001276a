// The demo page: one session per loaded image; every change goes to the server, which answers the whole state.
"use strict";

const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const ctx = canvas.getContext("2d");
const ui = { select: $("image-select"), next: $("next"), upload: $("upload"), undo: $("undo"), reset: $("reset"),
  opacity: $("opacity"), grabcut: $("grabcut"), download: $("download"), status: $("status"), message: $("message") };
const overlayColour = [255, 40, 40];
let state = null;           // the server's SessionState
let photo = null;           // the session's image (HTMLImageElement)
let overlay = null;         // the mask coloured for drawing (offscreen canvas)
let queue = Promise.resolve();  // requests run one after the other, in click order

function showError(text) {
  ui.message.textContent = text;
  ui.message.hidden = !text;
}

async function api(method, path, body) {
  const options = { method, headers: {} };
  if (body instanceof FormData) {
    options.body = body;
  } else if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (e) { /* not JSON */ }
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return response.status === 204 ? null : response.json();
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("the browser could not display " + src));
    img.src = src;
  });
}

async function colourMask(dataUrl, width, height) {
  const img = await loadImage(dataUrl);
  const off = document.createElement("canvas");
  off.width = width;
  off.height = height;
  const octx = off.getContext("2d");
  octx.drawImage(img, 0, 0);
  const pixels = octx.getImageData(0, 0, width, height);
  const d = pixels.data;
  for (let i = 0; i < d.length; i += 4) {
    const inside = d[i] > 127;
    d[i] = overlayColour[0]; d[i + 1] = overlayColour[1]; d[i + 2] = overlayColour[2];
    d[i + 3] = inside ? 255 : 0;
  }
  octx.putImageData(pixels, 0, 0);
  return off;
}

function draw() {
  if (!state || !photo) return;
  ctx.globalAlpha = 1;
  ctx.drawImage(photo, 0, 0);
  if (overlay) {
    ctx.globalAlpha = Number(ui.opacity.value) / 100;
    ctx.drawImage(overlay, 0, 0);
    ctx.globalAlpha = 1;
  }
  const radius = Math.max(5, Math.round(Math.max(state.width, state.height) / 90));
  ctx.font = `bold ${Math.round(radius * 1.5)}px system-ui, sans-serif`;
  ctx.textBaseline = "middle";
  state.clicks.forEach((c, i) => {
    ctx.beginPath();
    ctx.arc(c.x + 0.5, c.y + 0.5, radius, 0, 2 * Math.PI);
    ctx.fillStyle = c.positive ? "#1aa51a" : "#d01c1c";
    ctx.fill();
    ctx.lineWidth = 2;
    ctx.strokeStyle = "#fff";
    ctx.stroke();
    ctx.fillStyle = "#fff";
    ctx.fillText(c.positive ? "+" : "\u2212", c.x - radius * 0.45, c.y + 0.5);
    ctx.strokeStyle = "#000";
    ctx.lineWidth = 3;
    ctx.strokeText(String(i + 1), c.x + radius + 2, c.y - radius);
    ctx.fillText(String(i + 1), c.x + radius + 2, c.y - radius);
  });
}

async function show(next, newImage) {
  if (newImage) {
    photo = await loadImage(`/api/sessions/${next.id}/image`);
    canvas.width = next.width;
    canvas.height = next.height;
  }
  overlay = next.clicks.length ? await colourMask(next.mask, next.width, next.height) : null;
  state = next;
  draw();
  const n = state.clicks.length;
  const time = state.prediction_ms === null ? "no prediction yet" :
    `server time of the last prediction: ${state.prediction_ms.toFixed(0)} ms`;
  ui.status.textContent = `${state.name} (${state.width}\u00d7${state.height}): ${n} click${n === 1 ? "" : "s"}, ${time}` +
    (state.message ? ` \u2014 ${state.message}` : "");
  ui.undo.disabled = ui.reset.disabled = n === 0;
  ui.grabcut.checked = state.grabcut;
  ui.download.href = `/api/sessions/${state.id}/mask.png`;
  ui.download.classList.remove("disabled");
  canvas.dataset.clicks = String(n);
  canvas.dataset.session = state.id;
  canvas.dataset.state = "ready";
}

// Run one request at a time; the canvas says "busy" until the page shows its answer.
function run(task) {
  canvas.dataset.state = "busy";
  queue = queue.then(task).then(() => showError(""), (e) => showError(e.message))
    .finally(() => { if (state) canvas.dataset.state = "ready"; else canvas.dataset.state = "empty"; });
  return queue;
}

async function open(request) {
  const previous = state;
  const next = await request();
  await show(next, true);
  if (previous) api("DELETE", `/api/sessions/${previous.id}`).catch(() => {});
}

function pixelOf(event) {
  const rect = canvas.getBoundingClientRect();
  return { x: Math.floor((event.clientX - rect.left) * canvas.width / rect.width),
           y: Math.floor((event.clientY - rect.top) * canvas.height / rect.height) };
}

function addClick(event, positive) {
  event.preventDefault();
  if (!state) return;
  const { x, y } = pixelOf(event);
  run(async () => show(await api("POST", `/api/sessions/${state.id}/clicks`, { y, x, positive }), false));
}

canvas.addEventListener("click", (e) => addClick(e, !e.shiftKey));
canvas.addEventListener("contextmenu", (e) => addClick(e, false));
ui.undo.addEventListener("click", () => run(async () => show(await api("POST", `/api/sessions/${state.id}/undo`), false)));
ui.reset.addEventListener("click", () => run(async () => show(await api("POST", `/api/sessions/${state.id}/reset`), false)));
ui.grabcut.addEventListener("change", () => run(async () =>
  show(await api("PATCH", `/api/sessions/${state.id}`, { grabcut: ui.grabcut.checked }), false)));
ui.opacity.addEventListener("input", draw);
ui.select.addEventListener("change", () => {
  if (ui.select.value) run(() => open(() => api("POST", "/api/sessions", { image: ui.select.value })));
});
ui.next.addEventListener("click", () => {
  const n = ui.select.options.length;
  if (!n || !ui.select.value && !ui.select.options[0].value) return;
  ui.select.selectedIndex = (ui.select.selectedIndex + 1) % n;
  ui.select.dispatchEvent(new Event("change"));
});
ui.upload.addEventListener("change", () => {
  const file = ui.upload.files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  run(() => open(() => api("POST", "/api/sessions/upload", form)));
  ui.upload.value = "";
});

run(async () => {
  const { images } = await api("GET", "/api/images");
  ui.next.disabled = images.length === 0;
  if (!images.length) return;
  ui.select.innerHTML = "";
  for (const name of images) ui.select.add(new Option(name, name));
  await open(() => api("POST", "/api/sessions", { image: images[0] }));
});
