// jwtnotes API reference (GET /api/docs/): plain JavaScript that reads the
// OpenAPI document (GET /api/schema/) and writes every route of it into the
// page, with a form to try each one.
//
// It knows the shape of an OpenAPI 3.1 document (paths, operations,
// parameters, request bodies, responses, $ref), not this API: a route added
// to openapi.json shows here with nothing else to change. Everything it
// writes, the document's text, what users type and what the server
// answers, goes in with textContent, never parsed as HTML.
//
// The token: the forms send the one in the token box. "Use my session"
// fills it through the refresh cookie, as a second tab of the app would
// (the app keeps its own token in memory, where no other page can read it).
"use strict";

let doc = null; // the OpenAPI document

// ---- the page, from the document ----

async function start() {
  const res = await fetch("/api/schema/").catch(() => null);
  if (!res?.ok) {
    $("#toc").replaceChildren(el("h2", {}, "Routes"), el("p", { className: "errors" },
      "The OpenAPI document could not be loaded: is the server running? Reload to try again."));
    return;
  }
  doc = await res.json();
  const operations = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (method === "parameters" || method === "options") continue; // OPTIONS: the intro says it once
      operations.push({ path, method, op, parameters: [...(item.parameters ?? []), ...(op.parameters ?? [])].map(resolve) });
    }
  }
  $("#toc").replaceChildren(el("h2", {}, "Routes"), ...doc.tags.map((tag) => el("section", {},
    el("h3", {}, `${tag.name}: `, el("span", { className: "hint" }, tag.description)),
    el("ul", {}, operations.filter((o) => o.op.tags?.[0] === tag.name).map((o) =>
      el("li", {}, el("a", { href: `#${o.op.operationId}` }, el("code", {}, `${o.method.toUpperCase()} ${o.path}`)), ` ${o.op.summary ?? ""}`))))));
  $("#operations").replaceChildren(...operations.map(renderOperation));
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
}

// renderOperation is one route: what it does, who may call it, what it
// takes, what it answers, and the form to try it.
function renderOperation({ path, method, op, parameters }) {
  const section = el("section", { className: "card operation", id: op.operationId },
    el("h2", {}, el("span", { className: `method ${method}` }, method.toUpperCase()), " ", el("code", {}, path)),
    el("p", {}, prose(op.summary ?? "")));
  if (op.description) section.append(el("p", { className: "hint" }, prose(op.description)));
  section.append(el("p", {}, el("strong", {}, "Token: "), tokenRule(op)));
  if (parameters.length) {
    section.append(el("h3", {}, "Parameters"), table(["name", "in", "type", "about"], parameters.map((p) =>
      [fieldName(p.name, p.required), p.in, typeOf(p.schema), prose(aboutField(p, p.schema))])));
  }
  const body = op.requestBody && resolve(op.requestBody);
  if (body) {
    section.append(el("h3", {}, "Body"), el("p", { className: "hint" }, `Sent as ${Object.keys(body.content).join(", ")}.`));
    const json = body.content["application/json"] ?? Object.values(body.content)[0];
    section.append(fields(json.schema));
    const form = body.content["multipart/form-data"];
    if (form && hasFile(form.schema)) section.append(el("p", { className: "hint" }, "As multipart/form-data, with a file:"), fields(form.schema));
  }
  // Each answer a line (its status and what it means), opened for its
  // fields, examples and headers; a success comes open.
  section.append(el("h3", {}, "Answers"));
  const answers = el("div", { className: "answers" });
  for (const [status, raw] of Object.entries(op.responses)) {
    const answer = resolve(raw);
    const more = el("details", { open: status.startsWith("2") },
      el("summary", {}, el("strong", {}, status), " ", prose(answer.description ?? "")));
    for (const [type, media] of Object.entries(answer.content ?? {})) {
      more.append(el("p", { className: "hint" }, type));
      if (media.schema) more.append(fields(media.schema));
      for (const [name, value] of examplesOf(media)) {
        more.append(el("p", { className: "hint" }, name ? `Example: ${name}` : "Example"),
          el("pre", {}, typeof value === "string" ? value : JSON.stringify(value, null, 2)));
      }
    }
    for (const [name, header] of Object.entries(answer.headers ?? {})) {
      more.append(el("p", {}, el("code", {}, name), ": ", prose(resolve(header).description ?? "")));
    }
    answers.append(more);
  }
  section.append(answers, tryForm({ path, method, op, parameters, body }));
  return section;
}

function tokenRule(op) {
  const security = op.security ?? doc.security ?? [];
  const bearer = security.some((s) => "bearerAuth" in s), none = security.some((s) => !Object.keys(s).length);
  const cookie = security.some((s) => "refreshCookie" in s);
  if (cookie) return "the refresh cookie, if the browser holds one (POST /api/token/cookie/ sets it).";
  if (bearer && none) return "optional: none is fine, an invalid one is refused.";
  if (bearer) return "an access token (Authorization: Bearer).";
  return "none.";
}

// fields describes a schema: an object's fields in a table, a list's items,
// or the one type.
function fields(raw) {
  const schema = resolve(raw);
  const name = raw.$ref ? raw.$ref.split("/").pop() : "";
  const wrap = el("div", { className: "schema" });
  if (name) wrap.append(el("p", { className: "hint" }, `Schema ${name}`));
  if (schema.description) wrap.append(el("p", {}, prose(schema.description)));
  const object = schema.type === "array" ? resolve(schema.items) : schema;
  if (schema.type === "array") wrap.append(el("p", {}, `A list of ${typeOf(schema.items)}.`));
  const properties = Object.entries(object.properties ?? {});
  if (properties.length) {
    wrap.append(table(["field", "type", "about"], properties.map(([field, s]) =>
      [fieldName(field, object.required?.includes(field)), typeOf(s), prose(aboutField({}, s))])));
  } else if (schema.type !== "array") {
    wrap.append(el("p", {}, `Type: ${typeOf(raw)}.`));
  }
  return wrap;
}

function fieldName(name, required) {
  return [el("code", {}, name), required ? el("span", { className: "hint" }, " required") : ""];
}

// typeOf names a schema's type in words: "string", "integer or null", "Note",
// "list of Note", "file".
function typeOf(raw) {
  if (!raw) return "";
  if (raw.$ref) return raw.$ref.split("/").pop();
  if (raw.anyOf || raw.oneOf) return (raw.anyOf ?? raw.oneOf).map(typeOf).join(" or ");
  if (raw.allOf) return raw.allOf.map(typeOf).join(" and ");
  if (raw.format === "binary") return "file";
  if (raw.type === "array") return `list of ${typeOf(raw.items)}`;
  const type = [].concat(raw.type ?? "any").join(" or ");
  return raw.format ? `${type} (${raw.format})` : type;
}

// aboutField: a field's description with its limits.
function aboutField(param, schema = {}) {
  const s = resolve(schema);
  const limits = [];
  if (s.maxLength !== undefined) limits.push(`at most ${s.maxLength} characters`);
  if (s.minimum !== undefined) limits.push(`at least ${s.minimum}`);
  if (s.maximum !== undefined) limits.push(`at most ${s.maximum}`);
  if (s.default !== undefined) limits.push(`default ${JSON.stringify(s.default)}`);
  if (s.enum) limits.push(`one of ${s.enum.map((v) => JSON.stringify(v)).join(", ")}`);
  if (s.const !== undefined) limits.push(`always ${JSON.stringify(s.const)}`);
  const text = param.description ?? s.description ?? "";
  return [text, limits.length ? `(${limits.join("; ")})` : ""].filter(Boolean).join(" ");
}

function hasFile(raw) {
  return Object.values(resolve(raw).properties ?? {}).some((s) => s.format === "binary");
}

// examplesOf lists a media type's examples as [name, value] pairs.
function examplesOf(media) {
  if (media.example !== undefined) return [["", media.example]];
  return Object.entries(media.examples ?? {}).map(([name, ex]) => [resolve(ex).summary ?? name, resolve(ex).value]);
}

// resolve follows a $ref within the document ("#/components/...").
function resolve(node) {
  while (node?.$ref) node = node.$ref.slice(2).split("/").reduce((at, key) => at[key], doc);
  return node;
}

// prose writes a description's `code` spans as code.
function prose(text) {
  return String(text).split("`").map((part, i) => (i % 2 ? el("code", {}, part) : part));
}

function table(heads, rows) {
  return el("div", { className: "table" }, el("table", {},
    el("thead", {}, el("tr", {}, heads.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c)))))));
}

// ---- trying a route ----

// tryForm is the form that calls the route: its parameters, its JSON body
// (a sketch of the fields to edit), and the answer as it came.
function tryForm({ path, method, op, parameters, body }) {
  const form = el("form", { className: "try", noValidate: true });
  for (const p of parameters.filter((p) => p.in === "path" || p.in === "query")) {
    form.append(el("label", {}, `${p.name} (${p.in}${p.required ? ", required" : ""}) `,
      el("input", { name: `${p.in}:${p.name}`, required: !!p.required, autocomplete: "off" })));
  }
  const json = body?.content["application/json"];
  if (json) {
    form.append(el("label", {}, "Body (JSON) ",
      el("textarea", { name: "body", rows: 4, spellcheck: false, value: JSON.stringify(sketch(json.schema)) })));
  }
  const send = el("button", { type: "submit" }, `Send ${method.toUpperCase()}`);
  const answer = el("pre", { className: "answer", hidden: true, "aria-live": "polite" });
  form.append(send, answer);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (send.disabled) return;
    send.disabled = true;
    send.setAttribute("aria-busy", "true");
    answer.hidden = false;
    answer.textContent = "Sending…";
    try {
      answer.textContent = await call(form, path, method, op);
    } finally {
      send.disabled = false;
      send.removeAttribute("aria-busy");
    }
  });
  return el("details", { className: "try-it" }, el("summary", {}, "Try it"), form);
}

// call sends the form's request and returns the answer, written out.
async function call(form, path, method, op) {
  let url = path;
  const query = new URLSearchParams();
  for (const input of form.querySelectorAll("input")) {
    const [where, name] = input.name.split(":");
    if (where === "path") url = url.replace(`{${name}}`, encodeURIComponent(input.value));
    else if (input.value !== "") query.set(name, input.value);
  }
  if (query.size) url += `?${query}`;
  const bearer = (op.security ?? []).some((s) => "bearerAuth" in s);
  // The session's token lives minutes: one about to end is renewed first,
  // and one refused is renewed and tried once more.
  if (bearer && fromSession && expiresSoon($("#token").value)) await useSession();
  const send = () => {
    const headers = {};
    const token = $("#token").value.trim();
    if (token && bearer) headers.Authorization = `Bearer ${token}`;
    const init = { method: method.toUpperCase(), headers };
    if (form.body) {
      headers["Content-Type"] = "application/json";
      init.body = form.body.value;
    }
    return fetch(url, init);
  };
  let res;
  try {
    res = await send();
    if (res.status === 401 && bearer && fromSession && await useSession()) res = await send();
  } catch {
    return "The server cannot be reached: is it running?";
  }
  const type = res.headers.get("Content-Type") ?? "";
  const shown = ["Content-Type", "Link", "Location", "Retry-After", "X-Token-Rotation", "WWW-Authenticate", "Allow"]
    .filter((h) => res.headers.has(h)).map((h) => `${h}: ${res.headers.get(h)}`);
  let text;
  if (type.startsWith("application/json")) {
    const data = await res.json().catch(() => null);
    text = JSON.stringify(data, null, 2);
    if (typeof data?.access === "string") {
      $("#token").value = data.access;
      fromSession = false;
      sayToken("The answer's access token is in the box above: the forms send it now.");
    }
  } else {
    const bytes = await res.arrayBuffer();
    text = type.startsWith("text/") && bytes.byteLength < 4096
      ? new TextDecoder().decode(bytes) : `(${bytes.byteLength} bytes of ${type || "no type"})`;
  }
  return [`${res.status} ${res.statusText}`, ...shown, "", text ?? ""].join("\n");
}

// sketch is a JSON body with the schema's fields: its example, else each
// field's default or an empty value of its type.
function sketch(raw) {
  const s = resolve(raw);
  if (s.example !== undefined) return s.example;
  if (s.default !== undefined) return s.default;
  if (s.properties) return Object.fromEntries(Object.entries(s.properties).map(([k, v]) => [k, sketch(v)]));
  const type = [].concat(s.type ?? "string")[0];
  return { string: "", integer: 0, number: 0, boolean: false, array: [], object: {}, null: null }[type] ?? "";
}

// ---- the token box ----

let fromSession = false; // the token box holds the session's token (renewed as needed)

function sayToken(text) { $("#token-status").textContent = text; }

function expiresSoon(token) {
  try {
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).exp - Date.now() / 1000 < 5;
  } catch {
    return false;
  }
}

// useSession gets an access token through the refresh cookie (rotating
// it, as any tab of the app does). It returns whether it got one.
async function useSession() {
  const button = $("#use-session");
  button.disabled = true;
  try {
    const res = await fetch("/api/token/cookie/refresh/", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) {
      fromSession = false;
      sayToken(`No session: ${data.detail ?? res.status}. Log in in the app, or try POST /api/token/ below.`);
      return false;
    }
    $("#token").value = data.access;
    fromSession = true;
    const claims = JSON.parse(atob(data.access.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    sayToken(`Your session's access token, as ${claims.username}: it expires at ${new Date(claims.exp * 1000).toLocaleTimeString()}, and is renewed as needed.`);
    return true;
  } catch {
    sayToken("The server cannot be reached: is it running?");
    return false;
  } finally {
    button.disabled = false;
  }
}

$("#use-session").addEventListener("click", useSession);
$("#token").addEventListener("input", () => { fromSession = false; }); // a token pasted in is the user's to renew

// ---- helpers ----

function $(sel, root = document) { return root.querySelector(sel); }

// el makes an element with properties (attributes for aria-*) and children
// (strings become text).
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key.startsWith("aria-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children.flat(3).filter((c) => c !== "" && c !== null && c !== undefined));
  return node;
}

start();
// A session in this browser (the app leaves a hint, never a token): use it.
if (localStorage.getItem("jwtnotes.session")) useSession();
