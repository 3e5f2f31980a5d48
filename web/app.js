// jwtnotes browser client: plain JavaScript, no framework, no build step.
//
// How it holds the tokens (GUIDE.md says why):
// - the access token lives in memory only, in `session.access`;
// - the refresh token lives in an HttpOnly cookie that this script cannot
//   read: the server sets it at login (POST /api/token/cookie/) and rotates
//   it on every refresh, and the browser sends it to the token routes only.
//   A reload or a second tab gets a fresh access token through it; nothing
//   token-like is ever in localStorage, sessionStorage or document.cookie.
// The page keeps one hint in localStorage, "jwtnotes.session": that this
// browser holds a session cookie, so that a page load without one does not
// ask the server for a refresh it would refuse. It is not a token.
// Every API call goes through api(): it refreshes the access token shortly
// before it expires, and once more if the server answers 401 anyway. All the
// callers that need a refresh at the same moment share one refresh request.
// An answer that comes back after the page logged out (a timed refresh, a
// load) is dropped: it is about a session the page has left.
// The Tokens view shows the access token and this tab's token events.
// Mailed links open this page with their token in the fragment
// (#reset/TOKEN, #verify/TOKEN): the browser never sends a fragment to the
// server, and the page takes it out of the address bar at once.
// Every action (handle) shows that it is working and cannot be sent twice;
// its errors show beside the fields they are about.
"use strict";

// ---- tokens ----

const session = {
  access: null,   // the access token, in memory only
  accessExp: 0,   // its exp claim, in seconds
  accessTTL: 0,   // exp - iat: how long access tokens live on this server
  epoch: 0,       // counts the sessions this page has forgotten (logged out)
};

// claimsOf reads a token's payload. It does not verify it: the server does.
function claimsOf(token) { return decodeSegment(token.split(".")[1]); }
function headerOf(token) { return decodeSegment(token.split(".")[0]); }
function decodeSegment(part) {
  const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

function setAccess(access, event) {
  const claims = claimsOf(access);
  session.access = access;
  session.accessExp = claims.exp;
  session.accessTTL = claims.exp - claims.iat;
  if (event) logEvent(event, claims);
  scheduleRefresh();
  showToken();
}

function clearTokens() {
  session.epoch++; // an answer on its way (a refresh, a call) is now for a session the page has left
  session.access = null;
  session.accessExp = 0;
  clearTimeout(refreshTimer);
  showToken();
}

// The access token is renewed when a quarter of its life (at most 30 s)
// is left: before a request that would otherwise fail.
function refreshMargin() {
  return Math.min(30, session.accessTTL / 4);
}

function accessFresh() {
  return session.access && session.accessExp - Date.now() / 1000 > refreshMargin();
}

// A timed refresh that finds the session over ends it here; one that finds
// the server down leaves it to the next call to try again.
let refreshTimer = 0;
function scheduleRefresh() {
  clearTimeout(refreshTimer);
  const ms = (session.accessExp - refreshMargin()) * 1000 - Date.now();
  refreshTimer = setTimeout(() => refreshTokens().catch((err) => {
    if (err instanceof SessionEnded) sessionEnded(err);
  }), Math.max(ms, 0));
}

// SessionEnded: the server ended the page's session. It says which one (its
// epoch): a refresh sent before a logout can come back after it, and its
// answer must neither end the page's next session nor bring back the old.
class SessionEnded extends Error {
  constructor(epoch) {
    super("session ended");
    this.epoch = epoch;
  }
}

// The hint that this browser holds a session cookie (not the cookie, which
// no script can read).
const SESSION_HINT = "jwtnotes.session";

// request is fetch, with the network's failure said in words.
async function request(url, init) {
  try {
    return await fetch(url, init);
  } catch {
    throw new Error("The server cannot be reached: check that it is running, then try again.");
  }
}

// cookieCall posts {} (JSON: the server refuses anything else on these
// routes, as a cross-site form could send it) to a cookie route; the
// browser adds the HttpOnly cookie itself.
function cookieCall(path, body = {}) {
  return request(`/api/token/cookie/${path}`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
}

// refreshTokens rotates the refresh cookie for a new access token.
// Concurrent callers share the one request in flight (and two tabs that
// refresh at once both get the same new cookie: the server's grace period).
let refreshing = null;
function refreshTokens() {
  refreshing ??= (async () => {
    const epoch = session.epoch;
    const res = await cookieCall("refresh/");
    // Logged out meanwhile: a new token or a refusal, the answer is for no one.
    if (epoch !== session.epoch) throw new SessionEnded(epoch);
    if (res.status === 401) {
      const body = await res.json().catch(() => ({}));
      if (session.access) logEvent(`refused: ${body.detail || "401"} (the session is over)`);
      localStorage.removeItem(SESSION_HINT);
      throw new SessionEnded(epoch);
    }
    if (!res.ok) throw new Error(`refresh failed: ${res.status}`);
    const data = await res.json();
    setAccess(data.access, res.headers.get("X-Token-Rotation") === "grace"
      ? "refresh: a grace answer (another tab had just rotated the cookie; the server answered the same new one)"
      : "refresh: the server rotated the cookie");
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
  const epoch = session.epoch;
  const send = () => {
    const headers = {};
    let payload;
    if (body instanceof FormData) payload = body;
    else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    if (auth) headers.Authorization = `Bearer ${session.access}`;
    return request(`/api${path}`, { method, headers, body: payload });
  };
  if (auth && !accessFresh()) await refreshTokens();
  let res = await send();
  if (auth && res.status === 401) {
    // Expired early, or revoked: refresh once and try again. If the
    // session is over, refreshTokens throws SessionEnded.
    await refreshTokens();
    res = await send();
    if (res.status === 401) throw new SessionEnded(epoch);
  }
  // Logged out meanwhile: the answer is about an account the page has left.
  if (auth && epoch !== session.epoch) throw new SessionEnded(epoch);
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, data);
  return { data, link: res.headers.get("Link") };
}

// describeError turns the API's error body into sentences: {"detail": ...}
// or {"field": ["message", ...], ...}, each field named in words.
function describeError(body) {
  if (!body || typeof body !== "object") return "";
  if (typeof body.detail === "string") return body.detail;
  return Object.entries(body).map(([field, msgs]) => withField(field, [].concat(msgs).join(" "))).join("\n");
}

function withField(field, text) {
  if (field === "non_field_errors") return text;
  const words = field.replace(/_/g, " ").replace(/2$/, " again");
  return `${words[0].toUpperCase()}${words.slice(1)}: ${text}`;
}

// ---- page plumbing ----

const $ = (sel, root = document) => root.querySelector(sel);
const views = ["auth", "reset", "notes", "profile", "sessions", "security", "tokens"];

// The status line speaks for the view it was said on, and is cleared when
// another view shows. said with { next: true } (before a login, a logout
// or a mailed link changes the view), it stays on the view that comes next.
let currentView = null;
let statusView = null; // undefined: the view that shows next
function say(message, { next = false } = {}) {
  $("#status").textContent = message;
  statusView = next ? undefined : currentView;
}

// showErrors writes an API error into its form: each field's messages
// beside the field they are about (just under it, and the field points at
// them for a screen reader), the rest at the foot of the form (or, for a
// form with no place for them, the search, in the status line).
let errorIds = 0;
function showErrors(form, err) {
  for (const old of form.querySelectorAll(".field-error")) old.remove();
  for (const field of form.querySelectorAll("[aria-invalid]")) {
    field.removeAttribute("aria-invalid");
    field.removeAttribute("aria-describedby");
  }
  const box = $(".errors", form);
  box?.replaceChildren();
  if (!err) return;
  const rest = [];
  const fields = err.body && typeof err.body === "object" && typeof err.body.detail !== "string" ? Object.entries(err.body) : [];
  for (const [name, msgs] of fields) {
    const field = form.elements.namedItem(name);
    const text = [].concat(msgs).join(" ");
    if (!field?.labels?.length) { rest.push(withField(name, text)); continue; }
    const note = document.createElement("p");
    note.className = "field-error";
    note.id = `field-error-${++errorIds}`;
    note.textContent = text;
    field.labels[0].after(note); // beside the field, not in its label: the field keeps its name
    field.setAttribute("aria-invalid", "true");
    field.setAttribute("aria-describedby", note.id);
  }
  if (!fields.length) rest.push(...err.message.split("\n"));
  if (rest.length && !box) say(rest.join(" "));
  else if (rest.length) {
    const list = document.createElement("ul");
    for (const line of rest) {
      const li = document.createElement("li");
      li.textContent = line;
      list.append(li);
    }
    box.append(list);
  }
  form.querySelector("[aria-invalid]")?.focus();
}

// handle runs an action started from a form or a button: while it works,
// its buttons are disabled and marked busy (a second click sends nothing),
// and what goes wrong is shown: the session ending (back to the login
// form), or an error (in the form, else in the status line).
const working = new WeakSet();
async function handle(from, action) {
  if (from && working.has(from)) return;
  const form = from?.tagName === "FORM" ? from : null;
  const buttons = form ? [...form.querySelectorAll("button")] : from ? [from] : [];
  if (form) showErrors(form, null);
  if (from) {
    say(""); // the status line speaks of the last action
    working.add(from);
    from.setAttribute("aria-busy", "true");
    for (const b of buttons) b.disabled = true;
  }
  try {
    await action();
  } catch (err) {
    if (err instanceof SessionEnded) return sessionEnded(err);
    if (form) showErrors(form, err);
    else say(err.message);
  } finally {
    if (from) {
      working.delete(from);
      from.removeAttribute("aria-busy");
      for (const b of buttons) b.disabled = false;
    }
  }
}

// loading shows "Loading…" while a view's data is on its way.
let loads = 0;
async function loading(action) {
  $("#loading").hidden = ++loads === 0;
  try { await action(); } finally { $("#loading").hidden = --loads === 0; }
}

// sessionEnded goes back to the login form, unless the session that ended
// is one the page had already left (then it has nothing more to do).
function sessionEnded(err) {
  if (err.epoch !== session.epoch) return;
  forgetAccount();
  say("Your session has ended. Please log in again.", { next: true });
  location.hash = "#login";
  route();
}

// forgetAccount leaves nothing of the account on the page: its tokens, its
// notes and sessions, and whatever its forms held (a failed login too).
function forgetAccount() {
  clearTokens();
  localStorage.removeItem(SESSION_HINT);
  account.emailVerified = null;
  account.email = "";
  owners.clear();
  nextPage = null;
  mfaToken = null;
  for (const form of document.forms) { form.reset(); showErrors(form, null); }
  for (const list of ["#notes", "#sessions", "#demo-steps", "#security-log", "#recovery-codes"]) $(list).replaceChildren();
  $("#more").hidden = true;
  $("#cover").hidden = true;
  $("#resend-form").hidden = true;
  $("#mfa-enrol").hidden = $("#mfa-codes").hidden = true;
}

// show shows one view. A view that changes takes the focus to its heading,
// so that a keyboard or a screen reader starts there.
function show(view) {
  const changed = currentView !== null && view !== currentView;
  for (const v of views) $(`#${v}-view`).hidden = v !== view;
  const loggedOut = view === "auth" || view === "reset";
  $("#nav").hidden = loggedOut;
  $("#verify-banner").hidden = loggedOut || account.emailVerified !== false;
  // A login waiting for its code shows the code form alone.
  const askingCode = view === "auth" && mfaToken !== null;
  $("#forgot-form").hidden = askingCode || location.hash !== "#forgot";
  $("#code-form").hidden = !askingCode;
  $("#login-form").hidden = askingCode;
  $("#register-form").hidden = askingCode;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === `#${view}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (statusView !== undefined && statusView !== view) $("#status").textContent = "";
  statusView = view;
  currentView = view;
  if (changed) {
    const heading = [...document.querySelectorAll(`#${view}-view h2`)].find((h) => h.getClientRects().length);
    heading?.setAttribute("tabindex", "-1");
    heading?.focus();
  }
}

async function route() {
  const link = /^#(reset|verify)\/([A-Za-z0-9_-]+)$/.exec(location.hash);
  if (link) {
    history.replaceState(null, "", link[1] === "reset" ? "#reset" : "#notes"); // the token leaves the address bar (and the history)
    if (link[1] === "reset") resetToken = link[2];
    else await handle(null, () => verifyEmail(link[2]));
  }
  if (location.hash === "#reset" && resetToken) return show("reset");
  if (!session.access) {
    // A reload, or a new tab: the cookie (if this browser holds one) gets
    // an access token.
    if (!localStorage.getItem(SESSION_HINT)) return show("auth");
    try { await refreshTokens(); } catch (err) {
      if (!(err instanceof SessionEnded)) say(err.message, { next: true });
      return show("auth");
    }
  }
  await handle(null, checkVerified);
  const view = location.hash.slice(1);
  if (view === "profile") { show("profile"); return handle(null, () => loading(loadProfile)); }
  if (view === "sessions") { show("sessions"); return handle(null, () => loading(loadSessions)); }
  if (view === "security") { show("security"); return handle(null, () => loading(loadSecurity)); }
  if (view === "tokens") { show("tokens"); showToken(); return handle(null, loadMFAState); }
  show("notes");
  return handle(null, () => loading(() => loadNotes(true)));
}

// ---- logging in and out ----

// logIn sends the password. It returns true once logged in; false when
// the account has a second factor and the code form takes over.
async function logIn(username, password) {
  const res = await cookieCall("", { username, password });
  const data = await res.json().catch(() => null);
  // With -require-verified-email, the right password of an unverified
  // account: offer to mail the link again.
  $("#resend-form").hidden = data?.code !== "email_not_verified";
  if (data?.code === "mfa_required") {
    mfaToken = data.mfa_token; // the second step's, for 5 minutes
    show("auth");
    $("#code-form").code.focus();
    return false;
  }
  if (!res.ok) throw new ApiError(res.status, data);
  await loggedIn(data.access, "login: a new session, the refresh token set as an HttpOnly cookie");
  return true;
}

// loggedIn starts the page's session with its first access token.
async function loggedIn(access, event) {
  mfaToken = null;
  localStorage.setItem(SESSION_HINT, "cookie");
  for (const form of document.querySelectorAll("#auth-view form")) { form.reset(); showErrors(form, null); }
  setAccess(access, event);
  location.hash = "#notes";
  await route();
}

// ---- the second step of a login with two-factor authentication ----

let mfaToken = null; // set while the code form asks for a code

$("#code-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  handle(f, async () => {
    const res = await cookieCall("mfa/", { mfa_token: mfaToken, code: f.code.value });
    const data = await res.json().catch(() => null);
    if (data?.code === "mfa_token_invalid") { // 5 minutes or 5 codes: the password again
      mfaToken = null;
      show("auth");
      throw new ApiError(res.status, data);
    }
    if (data?.code === "mfa_code_invalid") throw new ApiError(res.status, { code: [data.detail] });
    if (!res.ok) throw new ApiError(res.status, data);
    const claims = claimsOf(data.access);
    await loggedIn(data.access, `login with a second factor (amr ${claims.amr?.join("+")}): a new session, the refresh token set as an HttpOnly cookie`);
    say(`Logged in as ${claims.username}.`);
  });
});

$("#code-cancel").addEventListener("click", () => {
  mfaToken = null;
  show("auth");
});

$("#login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  handle(f, async () => {
    if (await logIn(f.username.value, f.password.value)) say(`Logged in as ${claimsOf(session.access).username}.`);
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
    const email = f.email.value;
    try {
      await logIn(f.username.value, f.password.value);
    } catch (err) {
      if (err.body?.code !== "email_not_verified") throw err;
      f.reset();
      $("#resend-form").email.value = email;
      return say(`Your account is ready. Open the link we mailed to ${email} to verify it, then log in.`);
    }
    say("Welcome! Your account is ready. We mailed you a link to verify your email address.");
  });
});

// logOut ends this tab's session (and the other tabs follow).
async function logOut(message) {
  forgetAccount();
  tabs.postMessage("logout");
  say(message, { next: true });
  location.hash = "#login";
  await route();
}

$("#logout").addEventListener("click", (ev) => handle(ev.currentTarget, async () => {
  await cookieCall("logout/").catch(() => {}); // the server ends the session and clears the cookie
  logEvent("logout: the session ended, the cookie cleared");
  await logOut("Logged out.");
}));

// Another tab logged out: follow it.
const tabs = new BroadcastChannel("jwtnotes");
tabs.addEventListener("message", (ev) => {
  if (ev.data !== "logout") return;
  forgetAccount();
  say("Logged out.", { next: true });
  location.hash = "#login";
  route();
});
addEventListener("hashchange", route);

// ---- mailed links: password reset and email verification ----

let resetToken = null; // the token of the reset link this page was opened with
const account = { emailVerified: null, email: "" }; // null: not known yet

// checkVerified learns, once per login, whether the email is verified: the
// banner says so, with "Send again".
async function checkVerified() {
  if (account.emailVerified === null) noteAccount((await api("/profile/")).data);
}

function noteAccount(profile) {
  account.emailVerified = profile.email_verified;
  account.email = profile.email;
  $("#verify-banner").hidden = profile.email_verified;
}

async function verifyEmail(token) {
  const { data } = await api("/email/verify/", { method: "POST", auth: false, body: { token } });
  if (account.emailVerified === false) account.emailVerified = true;
  $("#verify-banner").hidden = true;
  $("#resend-form").hidden = true;
  say(`${data.detail} ${session.access || localStorage.getItem(SESSION_HINT) ? "" : "You can log in now."}`, { next: true });
}

async function resendVerification(email) {
  const { data } = await api("/email/verify/resend/", { method: "POST", auth: false, body: { email } });
  say(data.detail);
}

$("#verify-resend").addEventListener("click", (ev) => handle(ev.currentTarget, () => resendVerification(account.email)));

$("#resend-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  handle(f, () => resendVerification(f.email.value));
});

$("#forgot-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  handle(f, async () => {
    const { data } = await api("/password/reset/", { method: "POST", auth: false, body: { email: f.email.value } });
    f.reset();
    say(data.detail);
  });
});

$("#reset-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  handle(f, async () => {
    await api("/password/reset/confirm/", {
      method: "POST", auth: false,
      body: { token: resetToken, new_password: f.new_password.value, new_password2: f.new_password2.value },
    });
    resetToken = null;
    // The server ended every session of the account: this tab's and the others' too.
    await logOut("Your password is reset and every device is logged out. Log in with the new password.");
  });
});

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
  await learnOwners(data);
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

// owners are the names of the users whose public notes this page has
// shown (a note names its owner by id), asked once each.
const owners = new Map();
async function learnOwners(notes) {
  const unknown = new Set(notes.map((n) => n.user).filter((id) => id !== myId && !owners.has(id)));
  await Promise.all([...unknown].map(async (id) => {
    try {
      owners.set(id, (await api(`/users/${id}/`)).data.username);
    } catch (err) {
      if (err instanceof SessionEnded) throw err; // a note whose owner just left keeps their id
    }
  }));
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
  const whose = note.user === myId ? "yours" : `by ${owners.get(note.user) ?? `user ${note.user}`}`;
  $(".note-meta", li).textContent = `${note.is_public ? "Public" : "Private"} · ${whose} · ${when}`;
  $(".toggle-public", li).textContent = note.is_public ? "Make private" : "Make public";
}

function wireNote(li, note) {
  const form = $(".note-edit", li);
  const update = (from, body) => handle(from, async () => {
    const { data } = await api(`/notes/${note.id}/`, { method: "PATCH", body });
    Object.assign(note, data);
    fillNote(li, note);
    form.hidden = true;
    say("Note saved.");
  });
  $(".edit", li).addEventListener("click", () => {
    form.reset();
    showErrors(form, null);
    form.title.value = note.title;
    form.body.value = note.body;
    form.is_public.checked = note.is_public;
    form.hidden = false;
    form.title.focus();
  });
  $(".cancel", li).addEventListener("click", () => { form.hidden = true; });
  $(".toggle-public", li).addEventListener("click", (ev) => update(ev.currentTarget, { is_public: !note.is_public }));
  $(".delete", li).addEventListener("click", (ev) => handle(ev.currentTarget, async () => {
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
    update(form, body);
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
  handle(ev.target, () => loading(() => loadNotes(true)));
});
$("#more").addEventListener("click", (ev) => handle(ev.currentTarget, () => loadNotes(false)));

// ---- profile and password ----

async function loadProfile() {
  const { data } = await api("/profile/");
  noteAccount(data);
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

$("#delete-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  handle(f, async () => {
    if (!confirm("Delete your account, with its notes and images, for good?")) return;
    await api("/profile/", { method: "DELETE", body: { password: f.password.value } });
    await cookieCall("logout/").catch(() => {}); // the session is gone: this clears its cookie
    logEvent("account deleted: every session ended");
    await logOut("Your account is deleted, with its notes and images.");
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
      button.addEventListener("click", () => handle(button, async () => {
        await api(`/sessions/${s.id}/`, { method: "DELETE" });
        say("That device has been logged out.");
        await loadSessions();
      }));
      li.append(button);
    }
    list.append(li);
  }
}

$("#logout-all").addEventListener("click", (ev) => handle(ev.currentTarget, async () => {
  await api("/sessions/", { method: "DELETE" });
  logEvent("revoked: every session of the account, this one too");
  await logOut("Logged out everywhere.");
}));

// ---- security: the second factor, and the log ----

let mfaEnabled = false;
let logNext = null; // the security log's next page

// loadMFAState learns whether TOTP is on (the Security view's forms, and
// the demo's code field, depend on it).
async function loadMFAState() {
  const { data } = await api("/mfa/totp/");
  mfaEnabled = data.enabled;
  $("#demo-code").hidden = !mfaEnabled;
  return data;
}

async function loadSecurity() {
  const state = await loadMFAState();
  $("#mfa-state").textContent = state.enabled
    ? `On: a login asks for a code after the password. ${state.recovery_codes_left} recovery codes left.`
    : "Off: a login asks for the password only.";
  $("#mfa-start").hidden = state.enabled || !$("#mfa-enrol").hidden;
  $("#mfa-off").hidden = $("#mfa-renew").hidden = !state.enabled;
  await loadSecurityLog(true);
}

// The log's events, as a person says them.
const eventWords = {
  registered: "Account created", login: "Logged in", login_failed: "A wrong password",
  mfa_failed: "A wrong two-factor code", token_reuse: "A refresh token was used twice: its session was logged out",
  password_changed: "Password changed", password_reset: "Password reset through a mailed link",
  email_changed: "Email address changed", email_verified: "Email address verified",
  mfa_enabled: "Two-factor authentication turned on", mfa_disabled: "Two-factor authentication turned off",
  recovery_code_used: "A recovery code was used", recovery_codes_renewed: "New recovery codes made",
  session_revoked: "A session was logged out", logout_everywhere: "Logged out everywhere",
  deactivated: "Deactivated by an administrator", activated: "Activated by an administrator",
};

async function loadSecurityLog(fresh) {
  const { data, link } = await api(fresh || !logNext ? "/security-log/?limit=20" : logNext);
  const list = $("#security-log");
  if (fresh) list.replaceChildren();
  const mine = claimsOf(session.access).sid;
  for (const e of data) {
    const li = document.createElement("li");
    const what = document.createElement("strong");
    what.textContent = eventWords[e.event] ?? e.event;
    const where = [new Date(e.at).toLocaleString(), e.ip, e.user_agent, e.session === mine ? "this session" : ""]
      .filter(Boolean).join(" · ");
    li.append(what, e.detail ? ` (${e.detail})` : "", document.createElement("br"), where);
    list.append(li);
  }
  const next = link && /<([^>]+)>;\s*rel="next"/.exec(link);
  logNext = next ? new URL(next[1]).pathname.replace(/^\/api/, "") + new URL(next[1]).search : null;
  $("#log-more").hidden = !logNext;
}

$("#log-more").addEventListener("click", (ev) => handle(ev.currentTarget, () => loadSecurityLog(false)));

let qrURL = null; // the object URL of the QR code shown, revoked when replaced

$("#mfa-start").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  handle(f, async () => {
    const { data } = await api("/mfa/totp/", { method: "POST", body: { password: f.password.value } });
    f.reset();
    // The SVG comes from the server as text: an <img> shows it, and an
    // image can run no script (nor could it under this page's policy).
    if (qrURL) URL.revokeObjectURL(qrURL);
    qrURL = URL.createObjectURL(new Blob([data.qr_svg], { type: "image/svg+xml" }));
    $("#mfa-qr").src = qrURL;
    $("#mfa-secret").textContent = data.secret.replace(/(.{4})/g, "$1 ").trim();
    f.hidden = true;
    $("#mfa-enrol").hidden = false;
    $("#mfa-confirm").code.focus();
  });
});

$("#mfa-confirm").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  handle(f, async () => {
    const { data } = await api("/mfa/totp/confirm/", { method: "POST", body: { code: f.code.value } });
    f.reset();
    $("#mfa-enrol").hidden = true;
    showRecoveryCodes(data.recovery_codes);
    say("Two-factor authentication is on.");
    await loadSecurity();
  });
});

// showRecoveryCodes shows a new set, this once, with Copy and Download.
function showRecoveryCodes(codes) {
  const list = $("#recovery-codes");
  list.replaceChildren(...codes.map((code) => {
    const li = document.createElement("li");
    li.textContent = code;
    return li;
  }));
  $("#mfa-codes").hidden = false;
  $("#mfa-codes").scrollIntoView({ block: "nearest" });
}

function recoveryCodesText() {
  const codes = [...document.querySelectorAll("#recovery-codes li")].map((li) => li.textContent);
  return `jwtnotes recovery codes for ${claimsOf(session.access).username}\nEach works once.\n\n${codes.join("\n")}\n`;
}

$("#codes-copy").addEventListener("click", () => handle(null, async () => {
  await navigator.clipboard.writeText(recoveryCodesText());
  say("The recovery codes are copied.");
}));

$("#codes-download").addEventListener("click", () => {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([recoveryCodesText()], { type: "text/plain" }));
  a.download = "jwtnotes-recovery-codes.txt";
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 0);
});

$("#codes-done").addEventListener("click", () => {
  $("#recovery-codes").replaceChildren();
  $("#mfa-codes").hidden = true;
});

$("#mfa-renew").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  handle(f, async () => {
    const { data } = await api("/mfa/recovery-codes/", {
      method: "POST", body: { password: f.password.value, code: f.code.value },
    });
    f.reset();
    showRecoveryCodes(data.recovery_codes);
    say("New recovery codes: the old ones no longer work.");
    await loadSecurity();
  });
});

$("#mfa-off").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  handle(f, async () => {
    await api("/mfa/totp/", { method: "DELETE", body: { password: f.password.value, code: f.code.value } });
    f.reset();
    say("Two-factor authentication is off.");
    await loadSecurity();
  });
});

// ---- the token inspector ----

// logEvent adds a line to this tab's token timeline.
function logEvent(what, claims = session.access && claimsOf(session.access)) {
  const li = document.createElement("li");
  const jti = claims ? ` · access token ${claims.jti.slice(-8)}` : "";
  li.textContent = `${new Date().toLocaleTimeString()} ${what}${jti}`;
  $("#token-events").append(li);
}

// showToken fills the inspector with the current access token; its iat
// and exp (seconds since 1970, as JWT has them) also in local time.
function showToken() {
  if (!session.access) {
    for (const id of ["#token-header", "#token-claims", "#token-sid", "#token-kid", "#token-left", "#token-iat", "#token-exp"]) {
      $(id).textContent = "none";
    }
    return;
  }
  const header = headerOf(session.access), claims = claimsOf(session.access);
  const local = (seconds) => new Date(seconds * 1000).toLocaleTimeString();
  $("#token-header").textContent = JSON.stringify(header, null, 2);
  $("#token-claims").textContent = JSON.stringify(claims, null, 2);
  $("#token-iat").textContent = local(claims.iat);
  $("#token-exp").textContent = local(claims.exp);
  $("#token-sid").textContent = claims.sid;
  $("#token-kid").textContent = header.kid ?? "none";
  showTimeLeft();
}

function showTimeLeft() {
  if (!session.access) return;
  const left = Math.max(0, Math.round(session.accessExp - Date.now() / 1000));
  $("#token-left").textContent = left >= 60 ? `${Math.floor(left / 60)} min ${left % 60} s` : `${left} s`;
}
setInterval(showTimeLeft, 1000);

// ---- the demo: a stolen refresh token ----

// jsonPost posts JSON and returns the status and the parsed answer.
async function jsonPost(path, body) {
  const res = await request(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, data: await res.json().catch(() => null) };
}

function step(text) {
  const li = document.createElement("li");
  li.textContent = text;
  $("#demo-steps").append(li);
}

const shortJti = (token) => claimsOf(token).jti.slice(-8);
const pause = (ms) => new Promise((r) => setTimeout(r, ms));

// runDemo plays a theft in a second session of the account, logged in
// with the password in the JSON flow, so that it works whatever the
// server's settings (an account that may log in here may log in again).
// However it ends, the demo's session is over when it returns.
async function runDemo(password, code) {
  const username = claimsOf(session.access).username;
  let login = await jsonPost("/api/token/", { username, password });
  if (login.data?.code === "mfa_required") { // two-factor authentication is on: the code as well
    $("#demo-code").hidden = false;
    if (!code) throw new ApiError(401, { code: ["Enter a code of your authenticator app: the demo's session needs one too."] });
    login = await jsonPost("/api/token/mfa/", { mfa_token: login.data.mfa_token, code });
    if (login.status !== 200) throw new ApiError(login.status, { code: [login.data?.detail ?? `The server answered ${login.status}.`] });
  }
  if (login.status !== 200) throw new ApiError(login.status, { password: [login.data?.detail ?? `The server answered ${login.status}.`] });
  $("#demo-steps").replaceChildren();
  let newest = login.data.refresh; // the demo session's newest refresh token
  let revoked = false;
  try {
    step(`Logged in a second session of ${username} (${claimsOf(login.data.access).sid.slice(-8)}) in the JSON flow: its refresh token is in the answer.`);
    const stolen = login.data.refresh;
    step(`A thief copies that refresh token (${shortJti(stolen)}).`);
    const first = await jsonPost("/api/token/refresh/", { refresh: stolen });
    if (first.status !== 200) throw new Error(`the refresh was refused: ${describeError(first.data)}`);
    newest = first.data.refresh;
    step(`The owner refreshes: the server blacklists ${shortJti(stolen)} and answers a new refresh token (${shortJti(newest)}). Rotation.`);
    const again = await jsonPost("/api/token/refresh/", { refresh: stolen });
    if (again.data?.refresh === newest) {
      step(`The old token again at once: within the grace period the server answers the same new token (${shortJti(newest)}), so two tabs refreshing together end up with one. A grace answer.`);
    }
    step("Waiting out the grace period…");
    let replay;
    for (let i = 0; i < 60; i++) {
      await pause(1000);
      replay = await jsonPost("/api/token/refresh/", { refresh: stolen });
      if (replay.status === 401) break;
    }
    if (replay.status !== 401) throw new Error("the server still took the copy after a minute");
    revoked = true;
    step(`The thief replays the copy: 401 "${replay.data.detail}". A rotated token used after the grace period means two parties hold it, so the server revokes the whole session.`);
    const owner = await jsonPost("/api/token/refresh/", { refresh: newest });
    step(`The owner's newest refresh token (${shortJti(newest)}): ${owner.status} "${owner.data?.detail}". Revoked too.`);
    const profile = await request("/api/profile/", { headers: { Authorization: `Bearer ${first.data.access}` } });
    const body = await profile.json().catch(() => ({}));
    const left = Math.round(claimsOf(first.data.access).exp - Date.now() / 1000);
    step(`Its access token${left > 0 ? `, with ${left} s left before its exp` : ""}: GET /api/profile/ answers ${profile.status} "${body.detail}". The session is over everywhere.`);
    step("Done: the demo's session is revoked; yours goes on.");
  } catch (err) {
    step(`The demo stopped: ${err.message}`);
  } finally {
    // Stopped half-way: end the demo's session all the same.
    if (!revoked) {
      const out = await jsonPost("/api/token/blacklist/", { refresh: newest }).catch(() => null);
      step(out?.status === 200 ? "Cleaned up: the demo's session is logged out; yours goes on."
        : "Could not log the demo's session out: end it in the Sessions view.");
    }
  }
}

$("#demo").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  handle(f, async () => {
    await runDemo(f.password.value, f.code.value); // a wrong password or code: shown beside its field
    f.reset();
  });
});

// ---- start ----

route();
