// ExpStream live view: polls /api/state once a second and each stream's picture at the
// server's picture rate. Plain DOM, no framework, nothing from other sites; text is set with
// textContent only (stream ids and labels never become HTML).
"use strict";

const STATE_EVERY_MS = 1000;
const tiles = new Map(); // stream id -> {root, img, ...}
let pictureFps = null;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

function fmt(x, digits = 1) {
  return typeof x === "number" ? x.toFixed(digits) : "-";
}

function tile(sid) {
  let t = tiles.get(sid);
  if (t) return t;
  const root = el("article", "tile");
  root.dataset.stream = sid;
  const head = el("header");
  const name = el("span", "name", sid);
  const badge = el("span", "badge");
  const where = el("span", "muted where");
  head.append(name, badge, where);
  const img = el("img", "picture none");
  img.alt = `live picture of ${sid}`;
  const reason = el("div", "reason");
  const health = el("div", "health");
  const tracks = el("ul", "tracks");
  root.append(head, img, reason, health, tracks);
  document.getElementById("tiles").append(root);
  t = { root, badge, where, img, reason, health, tracks, frame: null, url: null, polling: false };
  tiles.set(sid, t);
  return t;
}

function renderTracks(t, tracks, classes) {
  t.tracks.replaceChildren(
    ...tracks.map((tr) => {
      const li = el("li", "track");
      li.dataset.track = tr.track_id;
      li.dataset.label = tr.label ?? "";
      li.dataset.frame = tr.frame_index ?? "";
      const who = el("div");
      who.append(el("span", "muted", `#${tr.track_id} `));
      if (tr.abstain) who.append(el("span", "abstain", `(${tr.abstain})`));
      else who.append(el("span", "label", tr.label ?? "..."));
      if (tr.score !== null && tr.score !== undefined) who.append(el("span", "muted", ` ${fmt(tr.score, 2)}`));
      if (tr.episode) who.append(el("div", "muted", `episode: ${tr.episode}`));
      const bars = el("div", "bars");
      (tr.bars || []).forEach((p, i) => {
        const bar = el("div", "bar");
        const fill = el("i");
        fill.style.width = `${Math.round(Math.max(0, Math.min(1, p)) * 100)}%`;
        bar.append(fill);
        bars.append(el("span", null, classes[i] ?? `class ${i}`), bar, el("span", null, fmt(p, 2)));
      });
      li.append(who, bars);
      return li;
    }),
  );
}

function renderStream(sid, st, classes) {
  const t = tile(sid);
  t.root.dataset.state = st.state ?? "";
  t.root.dataset.seq = st.seq ?? "";
  t.badge.className = `badge ${st.state ?? ""}`;
  t.badge.textContent = st.state ?? "?";
  const where = [];
  if (st.worker) where.push(`worker ${st.worker}`);
  if (st.epoch !== null && st.epoch !== undefined) where.push(`epoch ${st.epoch}`);
  t.where.textContent = where.join(", ");
  t.reason.textContent = st.reason ?? "";
  const h = st.health;
  if (h) {
    const lat = h.latency_ms || {};
    t.health.textContent =
      `${fmt(h.fps)} fps` +
      (h.dropped !== undefined ? ` | dropped ${h.dropped} of ${h.decoded}` : "") +
      (h.queue !== undefined ? ` | queue ${h.queue}` : "") +
      (lat.p50 !== undefined ? ` | latency p50 ${fmt(lat.p50, 0)} ms, p95 ${fmt(lat.p95, 0)} ms` : "");
  }
  renderTracks(t, st.tracks || [], classes);
  if (st.out_of_view) t.tracks.append(el("li", "muted", `${st.out_of_view} more tracked, not in the latest frame`));
  if (pictureFps && !t.polling && st.state !== "failed" && st.state !== "ended") pollPicture(sid, t);
}

async function pollPicture(sid, t) {
  t.polling = true;
  while (tiles.get(sid) === t && pictureFps) {
    if (!document.hidden) {
      try {
        const r = await fetch(`/api/frame/${encodeURIComponent(sid)}`, { cache: "no-store" });
        if (r.ok) {
          const url = URL.createObjectURL(await r.blob());
          t.img.src = url;
          t.img.classList.remove("none");
          t.img.dataset.frame = r.headers.get("X-Frame-Index") ?? "";
          if (t.url) URL.revokeObjectURL(t.url);
          t.url = url;
        }
      } catch (e) {
        /* the next round retries */
      }
    }
    if (t.root.dataset.state === "failed" || t.root.dataset.state === "ended") break;
    await new Promise((done) => setTimeout(done, 1000 / pictureFps));
  }
  t.polling = false;
}

function renderEvents(events) {
  document.getElementById("events").replaceChildren(
    ...events.map((e) => {
      const li = el("li", e.kind);
      const when = e.wall_time_s ? new Date(e.wall_time_s * 1000).toLocaleTimeString() : "";
      let what = e.scope === "episode" ? `episode ${e.kind}: #${e.track_id} ${e.label}` : e.kind;
      if (e.scope === "episode" && e.duration_s !== null && e.duration_s !== undefined) what += ` (${fmt(e.duration_s)} s)`;
      if (e.kind === "moved") what += `: ${e.from ?? "(none)"} -> ${e.to ?? "(waiting)"}`;
      if (e.epoch !== undefined) what += `, epoch ${e.epoch}`;
      li.append(el("span", "muted", `${when} ${e.stream_id} `), el("span", null, what));
      if (e.reason) li.append(el("div", "muted", e.reason));
      return li;
    }),
  );
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const r = await fetch("/api/state", { cache: "no-store" });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const doc = await r.json();
    pictureFps = doc.pictures ? doc.pictures.fps : null;
    const note = document.getElementById("pictures-note");
    note.hidden = pictureFps !== null;
    note.textContent = "Pictures are per process: open a worker's own streamer run --web page to see them.";
    for (const [sid, st] of Object.entries(doc.streams)) renderStream(sid, st, doc.classes || []);
    for (const [sid, t] of tiles) {
      if (!(sid in doc.streams)) {
        t.root.remove();
        tiles.delete(sid);
      }
    }
    renderEvents(doc.events || []);
    status.textContent = `engine ${doc.engine ?? "-"} | ${Object.keys(doc.streams).length} stream(s) | ${new Date(doc.wall_time_s * 1000).toLocaleTimeString()}`;
  } catch (e) {
    status.textContent = `no answer from the service (${e.message}); retrying`;
  }
  setTimeout(refresh, STATE_EVERY_MS);
}

refresh();
