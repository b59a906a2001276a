"use strict";
// The annotation page: a client of the JSON API (/docs). The canvas shows the image under a view transform (zoom,
// pan, fit), the finished objects tinted by label, the draft's mask in blue and the clicks (green +, red -). A click
// is drawn at once and its request sent without waiting for earlier ones: only the newest answer is shown (the
// server answers overtaken clicks with `superseded`), and the busy sign stays while any request is in flight.

const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const ctx = canvas.getContext("2d");
const POSITIVE = "#00c853", NEGATIVE = "#ff1744", DRAFT = "#2979ff";
const PALETTE = ["#ffab00", "#d500f9", "#00b8d4", "#ff6d00", "#651fff", "#ffd600", "#1de9b6", "#8d6e63", "#304ffe",
                 "#f06292", "#90a4ae", "#c6ff00", "#7e57c2", "#26c6da", "#ffcc80", "#ad1457", "#5d4037", "#00838f",
                 "#b388ff", "#fff176"];
const S = {
  labels: [], names: [], name: null, image: null, draft: null, draftLayer: null, objects: [], overlays: {},
  selected: -1, view: {scale: 1, ox: 0, oy: 0}, pending: [], seq: 0, inflight: 0, busyShown: 0,
  stroke: null, drag: null,
};
window.annotate = S;  // read by the browser tests

const enc = encodeURIComponent;
const colourOf = (label) => PALETTE[Math.max(0, S.labels.indexOf(label)) % PALETTE.length];

async function api(method, url, body) {
  const response = await fetch(url, {method, headers: body ? {"Content-Type": "application/json"} : {},
                                     body: body ? JSON.stringify(body) : undefined});
  if (!response.ok) {
    let text = response.statusText;
    try { text = (await response.json()).detail; } catch (e) { /* not JSON */ }
    throw new Error(String(text));
  }
  return response.status === 204 ? null : response.json();
}

function message(text) { $("message").textContent = text || ""; }

// A mask (alpha PNG data URL) as an offscreen canvas filled with one colour where the mask is.
async function tinted(url, colour) {
  const img = new Image();
  img.src = url;
  await img.decode();
  const layer = document.createElement("canvas");
  layer.width = img.naturalWidth;
  layer.height = img.naturalHeight;
  const g = layer.getContext("2d");
  g.drawImage(img, 0, 0);
  g.globalCompositeOperation = "source-in";
  g.fillStyle = colour;
  g.fillRect(0, 0, layer.width, layer.height);
  return layer;
}

// ---- view: zoom, pan, fit ----
const toImage = (sx, sy) => [(sx - S.view.ox) / S.view.scale, (sy - S.view.oy) / S.view.scale];
S.toScreen = (x, y) => [x * S.view.scale + S.view.ox, y * S.view.scale + S.view.oy];

function fit() {
  if (!S.image) return;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  const scale = Math.min(w / S.image.naturalWidth, h / S.image.naturalHeight) * 0.98;
  S.view = {scale, ox: (w - S.image.naturalWidth * scale) / 2, oy: (h - S.image.naturalHeight * scale) / 2};
  draw();
}

function zoom(factor, sx, sy) {
  const [ix, iy] = toImage(sx, sy);
  const scale = Math.min(64, Math.max(0.02, S.view.scale * factor));
  S.view = {scale, ox: sx - ix * scale, oy: sy - iy * scale};
  draw();
}

function draw() {
  if (canvas.width !== canvas.clientWidth || canvas.height !== canvas.clientHeight) {
    canvas.width = canvas.clientWidth;
    canvas.height = canvas.clientHeight;
  }
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const v = S.view;
  Object.assign(canvas.dataset, {scale: v.scale.toFixed(4), ox: v.ox.toFixed(1), oy: v.oy.toFixed(1)});
  if (!S.image) return;
  ctx.setTransform(v.scale, 0, 0, v.scale, v.ox, v.oy);
  ctx.imageSmoothingEnabled = v.scale < 1;
  ctx.drawImage(S.image, 0, 0);
  S.objects.forEach((o, i) => {
    const layer = S.overlays[o.id];
    if (!layer || (S.draft && S.draft.editing === o.id)) return;
    ctx.globalAlpha = i === S.selected ? 0.8 : 0.5;
    ctx.drawImage(layer, 0, 0, S.image.naturalWidth, S.image.naturalHeight);  // overlays may come smaller
  });
  ctx.globalAlpha = 0.55;
  if (S.draftLayer) ctx.drawImage(S.draftLayer, 0, 0, S.image.naturalWidth, S.image.naturalHeight);
  ctx.globalAlpha = 1;
  if (S.stroke) {
    ctx.strokeStyle = S.stroke.erase ? "#ffffff" : DRAFT;
    ctx.lineWidth = 2 * S.stroke.radius;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath();
    S.stroke.points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.stroke();
  }
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  const clicks = [...(S.draft ? S.draft.clicks : []), ...S.pending];
  clicks.forEach((c, i) => {
    const [sx, sy] = S.toScreen(c.x + 0.5, c.y + 0.5);
    ctx.beginPath();
    ctx.arc(sx, sy, 7, 0, 2 * Math.PI);
    ctx.fillStyle = c.positive ? POSITIVE : NEGATIVE;
    ctx.fill();
    ctx.lineWidth = 2;
    ctx.strokeStyle = "#fff";
    ctx.stroke();
    ctx.fillStyle = "#fff";
    ctx.font = "bold 10px sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText(String(i + 1), sx, sy);
  });
  canvas.dataset.markers = String(clicks.length);
}

// ---- requests that change the draft: the newest answer wins ----
function busy(on) {
  $("busy").hidden = !on;
  if (on) S.busyShown += 1;
  canvas.dataset.state = on ? "busy" : "ready";
}

async function applyDraft(state) {
  S.draftLayer = state.area ? await tinted(state.mask, DRAFT) : null;
  S.draft = state;
  S.pending = [];
  $("label").value = state.label;
  canvas.dataset.clicks = String(state.clicks.length);
  canvas.dataset.area = String(state.area);
  const ms = state.prediction_ms == null ? "" : ` · ${Math.round(state.prediction_ms)} ms`;
  const editing = state.editing ? " · redoing a saved object" : "";
  $("status").textContent = `${state.clicks.length} clicks · ${state.area} px${ms}${editing}`;
}

async function send(method, url, body) {
  const seq = ++S.seq;
  S.inflight += 1;
  busy(true);
  draw();
  try {
    const state = await api(method, url, body);
    if (seq === S.seq) { message(""); await applyDraft(state); }
  } catch (e) {
    if (seq === S.seq) { S.pending = []; message(e.message); }
  } finally {
    S.inflight -= 1;
    if (!S.inflight) busy(false);
    draw();
  }
}

const draftUrl = (tail) => `/api/drafts/${S.draft.id}${tail}`;

function addClick(x, y, positive) {
  if (!S.draft) return;
  x = Math.floor(x);
  y = Math.floor(y);
  if (x < 0 || y < 0 || x >= S.draft.width || y >= S.draft.height) return;
  S.pending.push({x, y, positive});
  send("POST", draftUrl("/clicks"), {x, y, positive});
}

const settled = async () => { while (S.inflight) await new Promise((r) => setTimeout(r, 20)); };

async function finish() {
  if (!S.draft) return;
  await settled();
  try {
    const answer = await api("POST", draftUrl("/finish"));
    await applyDraft(answer.draft);
    await loadObjects();
    await loadProject();
    message("");
  } catch (e) { message(e.message); }
  draw();
}

// ---- objects ----
async function loadObjects() {
  S.objects = await api("GET", `/api/images/${enc(S.name)}/objects`);
  S.overlays = {};
  await Promise.all(S.objects.map(async (o) => {
    const {mask} = await api("GET", `/api/images/${enc(S.name)}/objects/${o.id}/overlay`);
    S.overlays[o.id] = await tinted(mask, colourOf(o.label));
  }));
  if (S.selected >= S.objects.length) S.selected = -1;
  const list = $("objects");
  list.replaceChildren(...S.objects.map((o, i) => {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colourOf(o.label);
    item.append(swatch, `${o.label} (${o.area} px)`);
    item.dataset.id = o.id;
    item.onclick = () => select(i);
    return item;
  }));
  canvas.dataset.objects = String(S.objects.length);
  select(S.selected);
}

function select(i) {
  S.selected = i;
  [...$("objects").children].forEach((li, j) => li.classList.toggle("selected", j === i));
  const o = S.objects[i];
  $("objectTools").style.visibility = o ? "visible" : "hidden";
  if (o) {
    $("objectLabel").value = o.label;
    $("cutout").href = `/api/images/${enc(S.name)}/objects/${o.id}/cutout.png`;
  }
  draw();
}

async function objectAction(fn) {
  const o = S.objects[S.selected];
  if (!o) return;
  try { await fn(o); await loadObjects(); await loadProject(); } catch (e) { message(e.message); }
  draw();
}

async function setLabel(label) {
  if (S.objects[S.selected]) {
    await objectAction((o) => api("PATCH", `/api/images/${enc(S.name)}/objects/${o.id}`, {label}));
  } else if (S.draft) {
    await send("PATCH", draftUrl(""), {label});
  }
}

// ---- images and progress ----
async function loadProject() {
  const project = await api("GET", "/api/project");
  S.labels = project.labels;
  S.names = project.images.map((r) => r.name);
  $("progress").textContent = `${project.done} / ${project.total} images done`;
  const images = $("images");
  images.replaceChildren(...project.images.map((r) => new Option(`${r.done ? "✓ " : ""}${r.name} (${r.objects})`,
                                                                r.name)));
  if (S.name) images.value = S.name;
  const row = project.images.find((r) => r.name === S.name);
  $("done").checked = Boolean(row && row.done);
  return project;
}

async function openImage(name) {
  await settled();
  S.name = name;
  history.replaceState(null, "", "#" + enc(name));
  message("");
  const img = new Image();
  img.src = `/api/images/${enc(name)}/image`;
  try {
    await img.decode();
    S.image = img;
    S.selected = -1;
    S.pending = [];
    S.draftLayer = null;
    await applyDraft(await api("POST", "/api/drafts", {image: name, label: $("label").value || undefined}));
    await loadObjects();
    await loadProject();
    fit();
  } catch (e) { message(e.message); }
}

function step(delta) {
  const i = S.names.indexOf(S.name);
  const j = Math.min(S.names.length - 1, Math.max(0, i + delta));
  if (j !== i) openImage(S.names[j]);
}

// ---- input ----
canvas.addEventListener("wheel", (e) => {
  e.preventDefault();
  zoom(Math.exp(-e.deltaY * 0.0015), e.offsetX, e.offsetY);
}, {passive: false});

canvas.addEventListener("contextmenu", (e) => e.preventDefault());

canvas.addEventListener("mousedown", (e) => {
  if (e.button === 0 && $("brush").checked && S.draft) {
    S.stroke = {points: [toImage(e.offsetX, e.offsetY)], radius: Number($("radius").value),
                erase: $("erase").checked !== e.altKey};
    draw();
  } else {
    S.drag = {x: e.offsetX, y: e.offsetY, ox: S.view.ox, oy: S.view.oy, moved: false, button: e.button,
              shift: e.shiftKey};
  }
});

canvas.addEventListener("mousemove", (e) => {
  if (S.stroke) {
    S.stroke.points.push(toImage(e.offsetX, e.offsetY));
    draw();
  } else if (S.drag) {
    const dx = e.offsetX - S.drag.x, dy = e.offsetY - S.drag.y;
    if (!S.drag.moved && Math.hypot(dx, dy) < 5) return;
    S.drag.moved = true;
    canvas.classList.add("pan");
    S.view.ox = S.drag.ox + dx;
    S.view.oy = S.drag.oy + dy;
    draw();
  }
});

window.addEventListener("mouseup", (e) => {
  if (S.stroke) {
    const stroke = S.stroke;
    S.stroke = null;
    send("POST", draftUrl("/strokes"), {points: stroke.points, radius: stroke.radius, erase: stroke.erase});
  } else if (S.drag) {
    const drag = S.drag;
    S.drag = null;
    canvas.classList.remove("pan");
    if (!drag.moved && e.target === canvas && drag.button !== 1) {
      const [x, y] = toImage(e.offsetX, e.offsetY);
      addClick(x, y, drag.button === 0 && !drag.shift);
    }
  }
});

document.addEventListener("keydown", (e) => {
  const t = e.target;
  if (t.tagName === "SELECT" || (t.tagName === "INPUT" && t.type !== "checkbox")) return;
  const key = e.key.toLowerCase();
  if ((e.ctrlKey || e.metaKey) && (key === "z" || key === "y")) {
    e.preventDefault();
    if (S.draft) send("POST", draftUrl(e.shiftKey || key === "y" ? "/redo" : "/undo"));
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const actions = {
    " ": finish, r: () => S.draft && send("POST", draftUrl("/reset")), n: () => step(1), p: () => step(-1),
    tab: () => S.objects.length && select((S.selected + 1) % S.objects.length), f: fit,
    b: () => { $("brush").checked = !$("brush").checked; }, e: () => { $("erase").checked = !$("erase").checked; },
    d: () => { $("done").click(); }, delete: () => $("delete").click(), escape: () => select(-1),
  };
  if (/^[1-9]$/.test(key)) {
    e.preventDefault();
    const label = S.labels[Number(key) - 1];
    if (label) setLabel(label);
  } else if (actions[key]) {
    e.preventDefault();
    actions[key]();
  }
});

window.addEventListener("resize", () => fit());
$("fit").onclick = fit;
$("zoomin").onclick = () => zoom(1.25, canvas.clientWidth / 2, canvas.clientHeight / 2);
$("zoomout").onclick = () => zoom(0.8, canvas.clientWidth / 2, canvas.clientHeight / 2);
$("finish").onclick = finish;
$("undo").onclick = () => S.draft && send("POST", draftUrl("/undo"));
$("redo").onclick = () => S.draft && send("POST", draftUrl("/redo"));
$("reset").onclick = () => S.draft && send("POST", draftUrl("/reset"));
$("next").onclick = () => step(1);
$("prev").onclick = () => step(-1);
$("images").onchange = (e) => { e.target.blur(); openImage(e.target.value); };
$("label").onchange = (e) => { e.target.blur(); if (S.draft) send("PATCH", draftUrl(""), {label: e.target.value}); };
$("objectLabel").onchange = (e) => {
  e.target.blur();
  objectAction((o) => api("PATCH", `/api/images/${enc(S.name)}/objects/${o.id}`, {label: e.target.value}));
};
$("delete").onclick = () => objectAction((o) => api("DELETE", `/api/images/${enc(S.name)}/objects/${o.id}`));
$("redoObject").onclick = async () => {
  const o = S.objects[S.selected];
  if (!o) return;
  await settled();
  try { await applyDraft(await api("POST", "/api/drafts", {image: S.name, object: o.id})); } catch (e) {
    message(e.message);
  }
  select(-1);
};
$("done").onchange = async (e) => {
  try { await api("PUT", `/api/images/${enc(S.name)}/done`, {done: e.target.checked}); await loadProject(); } catch (err) {
    message(err.message);
  }
};

(async function start() {
  try {
    const project = await loadProject();
    const labels = project.labels.map((l, i) => new Option(i < 9 ? `${i + 1} · ${l}` : l, l));
    $("label").replaceChildren(...labels);
    $("objectLabel").replaceChildren(...labels.map((o) => new Option(o.text, o.value)));
    const wanted = decodeURIComponent(location.hash.slice(1));
    const first = project.images.find((r) => r.name === wanted) || project.images.find((r) => !r.done)
      || project.images[0];
    if (first) await openImage(first.name); else message("no images in the --images folder");
  } catch (e) { message(e.message); }
  busy(false);
  select(-1);
})();
