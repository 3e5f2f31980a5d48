// jwtnotes browser client: plain JavaScript, no framework, no build step.
//
// How it holds the tokens (GUIDE.md says why):
// - the access token lives in memory only, in `session.access`;
// - the refresh token lives in localStorage, so that a reload or a second tab
//   keeps you logged in; the server rotates it on every refresh and revokes
//   the whole session if an old one is ever replayed.
// Every API call goes through api(): it refreshes the access token shortly
// before it expires, and once more if the server answers 401 anyway. All the
// callers that need a refresh at the same moment share one refresh request.
"use strict";

const REFRESH_KEY = "jwtnotes.refresh";

// ---- tokens ----

const session = {
  access: null,   // the access token, in memory only
  accessExp: 0,   // its exp claim, in seconds
  accessTTL: 0,   // exp - iat: how long access tokens live on this server
  get refresh() { return localStorage.getItem(REFRESH_KEY); },
};

// claimsOf reads a token's payload. It does not verify it: the server does.
function claimsOf(token) {
  const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  const bytes = Uint8Array.from(atob(part), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

function setTokens(access, refresh) {
  const claims = claimsOf(access);
  session.access = access;
  session.accessExp = claims.exp;
  session.accessTTL = claims.exp - claims.iat;
  if (refresh) localStorage.setItem(REFRESH_KEY, refresh);
  scheduleRefresh();
}

function clearTokens() {
  session.access = null;
  session.accessExp = 0;
  localStorage.removeItem(REFRESH_KEY);
  clearTimeout(refreshTimer);
}

// The access token is renewed when a quarter of its life (at most 30 s)
// is left: before a request that would otherwise fail.
function refreshMargin() {
  return Math.min(30, session.accessTTL / 4);
}

function accessFresh() {
  return session.access && session.accessExp - Date.now() / 1000 > refreshMargin();
}

let refreshTimer = 0;
function scheduleRefresh() {
  clearTimeout(refreshTimer);
  const ms = (session.accessExp - refreshMargin()) * 1000 - Date.now();
  refreshTimer = setTimeout(() => refreshTokens().catch(sessionEnded), Math.max(ms, 0));
}

class SessionEnded extends Error {}

// refreshTokens rotates the refresh token for a new pair. Concurrent callers
// share the one request in flight: a second refresh with the same token
// would be a replay.
let refreshing = null;
function refreshTokens() {
  refreshing ??= (async () => {
    const refresh = session.refresh;
    if (!refresh) throw new SessionEnded("not logged in");
    const res = await fetch("/api/token/refresh/", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh }),
    });
    if (res.status === 401 || res.status === 400) throw new SessionEnded("session ended");
    if (!res.ok) throw new Error(`refresh failed: ${res.status}`);
    const data = await res.json();
    setTokens(data.access, data.refresh);
  })().finally(() => { refreshing = null; });
  return refreshing;
}

class ApiError extends Error {
  constructor(status, body) {
    super(describeError(body) || `The server answered ${status}.`);
    this.status = status;
    this.body = body;
  }
}

// api calls the API and returns the parsed answer (null for 204). body is a
// plain object (sent as JSON) or a FormData (sent as multipart, for files).
async function api(path, { method = "GET", body, auth = true } = {}) {
  const send = () => {
    const headers = {};
    let payload;
    if (body instanceof FormData) payload = body;
    else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    if (auth) headers.Authorization = `Bearer ${session.access}`;
    return fetch(`/api${path}`, { method, headers, body: payload });
  };
  if (auth && !accessFresh()) await refreshTokens();
  let res = await send();
  if (auth && res.status === 401) {
    // Expired early, or revoked: refresh once and try again. If the
    // session is over, refreshTokens throws SessionEnded.
    await refreshTokens();
    res = await send();
    if (res.status === 401) throw new SessionEnded("session ended");
  }
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, data);
  return { data, link: res.headers.get("Link") };
}

// describeError turns the API's error body into sentences: {"detail": ...}
// or {"field": ["message", ...], ...}.
function describeError(body) {
  if (!body || typeof body !== "object") return "";
  if (typeof body.detail === "string") return body.detail;
  return Object.entries(body)
    .map(([field, msgs]) => `${field === "non_field_errors" ? "" : field.replace(/_/g, " ") + ": "}${[].concat(msgs).join(" ")}`)
    .join("\n");
}

// ---- page plumbing ----

const $ = (sel, root = document) => root.querySelector(sel);
const views = ["auth", "notes", "profile", "sessions"];

function say(message) { $("#status").textContent = message; }

function showErrors(form, err) {
  const box = $(".errors", form);
  box.replaceChildren();
  if (!err) return;
  const list = document.createElement("ul");
  for (const line of err.message.split("\n")) {
    const li = document.createElement("li");
    li.textContent = line;
    list.append(li);
  }
  box.append(list);
}

// handle runs an action and deals with what can go wrong: the session
// ending (back to the login form) or an API error (shown in the form).
async function handle(form, action) {
  if (form) showErrors(form, null);
  try {
    await action();
  } catch (err) {
    if (err instanceof SessionEnded) return sessionEnded();
    if (form) showErrors(form, err);
    else say(err.message);
  }
}

function sessionEnded() {
  clearTokens();
  say("Your session has ended. Please log in again.");
  location.hash = "#login";
  route();
}

function show(view) {
  for (const v of views) $(`#${v}-view`).hidden = v !== view;
  $("#nav").hidden = view === "auth";
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === `#${view}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

async function route() {
  if (!session.refresh) return show("auth");
  const view = location.hash.slice(1);
  if (view === "profile") { show("profile"); return handle(null, loadProfile); }
  if (view === "sessions") { show("sessions"); return handle(null, loadSessions); }
  show("notes");
  return handle(null, () => loadNotes(true));
}

// ---- logging in and out ----

async function logIn(username, password) {
  const { data } = await api("/token/", { method: "POST", body: { username, password }, auth: false });
  setTokens(data.access, data.refresh);
  location.hash = "#notes";
  await route();
}

$("#login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  handle(f, async () => {
    await logIn(f.username.value, f.password.value);
    f.reset();
    say(`Logged in as ${claimsOf(session.access).username}.`);
  });
});

$("#register-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  handle(f, async () => {
    await api("/register/", {
      method: "POST", auth: false,
      body: { username: f.username.value, email: f.email.value, password: f.password.value,
              password2: f.password2.value, bio: f.bio.value },
    });
    await logIn(f.username.value, f.password.value);
    f.reset();
    say("Welcome! Your account is ready.");
  });
});

$("#logout").addEventListener("click", async () => {
  const refresh = session.refresh;
  clearTokens();
  if (refresh) {
    await fetch("/api/token/blacklist/", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ refresh }),
    }).catch(() => {});
  }
  say("Logged out.");
  location.hash = "#login";
  route();
});

// Another tab logged out (or in): follow it.
addEventListener("storage", (ev) => {
  if (ev.key !== REFRESH_KEY) return;
  if (!ev.newValue) { session.access = null; route(); }
});
addEventListener("hashchange", route);

// ---- notes ----

let nextPage = null;
let myId = 0;

async function loadNotes(fresh) {
  if (!accessFresh()) await refreshTokens();
  myId = claimsOf(session.access).user_id;
  const search = $("#search-form");
  let path = nextPage;
  if (fresh || !path) {
    const q = new URLSearchParams({ limit: "20" });
    if (search.q.value) q.set("q", search.q.value);
    if (search.mine.checked) q.set("mine", "1");
    path = `/notes/?${q}`;
  }
  const { data, link } = await api(path);
  const list = $("#notes");
  if (fresh) list.replaceChildren();
  for (const note of data) list.append(renderNote(note));
  const next = link && /<([^>]+)>;\s*rel="next"/.exec(link);
  nextPage = next ? new URL(next[1]).pathname.replace(/^\/api/, "") + new URL(next[1]).search : null;
  $("#more").hidden = !nextPage;
  if (fresh && !data.length) {
    const empty = document.createElement("li");
    empty.className = "empty";
    empty.textContent = search.q.value ? "No note matches." : "No notes yet: write the first one above.";
    list.append(empty);
  }
}

function renderNote(note) {
  const li = $("#note-template").content.firstElementChild.cloneNode(true);
  li.dataset.id = note.id;
  fillNote(li, note);
  const mine = note.user === myId;
  $(".note-actions", li).hidden = !mine;
  if (mine) wireNote(li, note);
  return li;
}

// fillNote writes a note into its list item with textContent: what users
// typed is never parsed as HTML.
function fillNote(li, note) {
  $(".note-title", li).textContent = note.title || "(untitled)";
  $(".note-body", li).textContent = note.body;
  const img = $(".note-image", li);
  img.hidden = !note.cover_image;
  if (note.cover_image) { img.src = note.cover_image; img.alt = `Image of "${note.title}"`; }
  const when = new Date(note.updated).toLocaleString();
  $(".note-meta", li).textContent =
    `${note.is_public ? "Public" : "Private"} · ${note.user === myId ? "yours" : `by user ${note.user}`} · ${when}`;
  $(".toggle-public", li).textContent = note.is_public ? "Make private" : "Make public";
}

function wireNote(li, note) {
  const form = $(".note-edit", li);
  const update = (body) => handle(form, async () => {
    const { data } = await api(`/notes/${note.id}/`, { method: "PATCH", body });
    Object.assign(note, data);
    fillNote(li, note);
    form.hidden = true;
    say("Note saved.");
  });
  $(".edit", li).addEventListener("click", () => {
    form.title.value = note.title;
    form.body.value = note.body;
    form.is_public.checked = note.is_public;
    form.hidden = false;
    form.title.focus();
  });
  $(".cancel", li).addEventListener("click", () => { form.hidden = true; });
  $(".toggle-public", li).addEventListener("click", () => update({ is_public: !note.is_public }));
  $(".delete", li).addEventListener("click", () => handle(null, async () => {
    if (!confirm(`Delete "${note.title || "this note"}"?`)) return;
    await api(`/notes/${note.id}/`, { method: "DELETE" });
    li.remove();
    say("Note deleted.");
  }));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const body = new FormData();
    body.set("title", form.title.value);
    body.set("body", form.body.value);
    body.set("is_public", form.is_public.checked ? "true" : "false");
    if (form.cover_image.files[0]) body.set("cover_image", form.cover_image.files[0]);
    else if (form.remove_image.checked) body.set("cover_image", "");
    update(body);
  });
}

$("#note-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  handle(f, async () => {
    const body = new FormData();
    body.set("title", f.title.value);
    body.set("body", f.body.value);
    body.set("is_public", f.is_public.checked ? "true" : "false");
    if (f.cover_image.files[0]) body.set("cover_image", f.cover_image.files[0]);
    const { data } = await api("/notes/", { method: "POST", body });
    $("#notes .empty")?.remove();
    $("#notes").prepend(renderNote(data));
    f.reset();
    say("Note added.");
  });
});

$("#search-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  handle(null, () => loadNotes(true));
});
$("#more").addEventListener("click", () => handle(null, () => loadNotes(false)));

// ---- profile and password ----

async function loadProfile() {
  const { data } = await api("/profile/");
  const f = $("#profile-form");
  for (const name of ["username", "email", "first_name", "last_name", "bio"]) f[name].value = data[name];
  f.remove_cover.checked = false;
  f.cover_photo.value = "";
  const cover = $("#cover");
  cover.hidden = !data.cover_photo;
  if (data.cover_photo) cover.src = data.cover_photo;
}

$("#profile-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  handle(f, async () => {
    const body = new FormData();
    for (const name of ["username", "email", "first_name", "last_name", "bio"]) body.set(name, f[name].value);
    if (f.cover_photo.files[0]) body.set("cover_photo", f.cover_photo.files[0]);
    else if (f.remove_cover.checked) body.set("cover_photo", "");
    await api("/profile/update/", { method: "PATCH", body });
    // New claims (username, email) come with the next token: get it now.
    await refreshTokens();
    await loadProfile();
    say("Profile saved.");
  });
});

$("#password-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  handle(f, async () => {
    await api("/profile/password/", {
      method: "POST",
      body: { old_password: f.old_password.value, new_password: f.new_password.value, new_password2: f.new_password2.value },
    });
    f.reset();
    say("Password changed. Your other devices have been logged out.");
  });
});

// ---- sessions ----

async function loadSessions() {
  const { data } = await api("/sessions/");
  const list = $("#sessions");
  list.replaceChildren();
  for (const s of data) {
    const li = document.createElement("li");
    const text = document.createElement("span");
    text.textContent = `${s.current ? "This device" : s.user_agent || "Unknown device"} · ${s.ip} · ` +
      `last used ${new Date(s.last_used).toLocaleString()}`;
    if (s.current) text.className = "current";
    li.append(text);
    if (!s.current) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "danger";
      button.textContent = "Log out";
      button.setAttribute("aria-label", `Log out ${s.user_agent || "that device"}`);
      button.addEventListener("click", () => handle(null, async () => {
        await api(`/sessions/${s.id}/`, { method: "DELETE" });
        say("That device has been logged out.");
        await loadSessions();
      }));
      li.append(button);
    }
    list.append(li);
  }
}

$("#logout-all").addEventListener("click", () => handle(null, async () => {
  await api("/sessions/", { method: "DELETE" });
  clearTokens();
  say("Logged out everywhere.");
  location.hash = "#login";
  route();
}));

// ---- start ----

route();
