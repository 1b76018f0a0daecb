// The athlete directory on the console page: folders whose files wait for an athlete, each with
// a form to link it, and the list of links (edit / remove for those made at a station; the
// config file's are shown, not changed). Uses el() and csrf from console.js. Server text goes in
// as textContent only.
"use strict";

const ATHLETES_MS = 3000;
let athletesTimer = null;
let athletesShown = "";

async function postJson(url, body) {
  const res = await fetch(url, { method: "POST", credentials: "same-origin",
    headers: { "X-CSRF-Token": csrf, "Content-Type": "application/json" },
    body: JSON.stringify(body) });
  let answer = {};
  try { answer = await res.json(); } catch (e) { /* plain text error */ }
  if (!res.ok) throw new Error(answer.error || `the service answered ${res.status}`);
  return answer;
}

function editing() {
  // Never redraw under someone typing: a focused or filled-in field keeps the panel as it is.
  const fields = document.querySelectorAll("#unknown input, #athlete-list input");
  return Array.from(fields).some((f) => f === document.activeElement || f.value.trim());
}

async function loadAthletes(force) {
  clearTimeout(athletesTimer);
  try {
    const res = await fetch("/api/athletes", { credentials: "same-origin" });
    if (res.ok) {
      const doc = await res.json();
      const text = JSON.stringify(doc);
      if (force || (text !== athletesShown && !editing())) {
        athletesShown = text;
        renderUnknown(doc.unknown_folders || []);
        renderAthletes(doc.athletes || []);
      }
    }
  } catch (e) { /* the next round tries again */ }
  if (!document.hidden) athletesTimer = setTimeout(() => loadAthletes(false), ATHLETES_MS);
}

function say(text, bad) {
  const msg = document.getElementById("athlete-msg");
  msg.textContent = text;
  msg.classList.toggle("bad", !!bad);
}

function linkForm(folder, athleteId, name, label) {
  const err = el("span", { class: "athlete-error", role: "alert" });
  const uuid = el("input", { type: "text", name: "athlete_id", value: athleteId || "",
    placeholder: "athlete UUID", "aria-label": `Athlete UUID for ${folder}`, size: "38",
    autocomplete: "off", spellcheck: "false" });
  const who = el("input", { type: "text", name: "name", value: name || "",
    placeholder: "name (optional)", "aria-label": `Name for ${folder}`, autocomplete: "off" });
  const form = el("form", { class: "link-form", "data-folder": folder }, uuid, who,
    el("button", { type: "submit", class: "btn small primary", text: label }), err);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    err.textContent = "";
    try {
      const done = await postJson("/api/athletes", { folder, athlete_id: uuid.value,
        name: who.value || null });
      uuid.value = "";
      who.value = "";
      say(`Linked ${folder} to ${done.linked.name || done.linked.athlete_id}.`);
      loadAthletes(true);
      if (typeof refresh === "function") refresh();
    } catch (ex) {
      err.textContent = ex.message;
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function renderUnknown(folders) {
  document.getElementById("unknown-panel").hidden = folders.length === 0;
  document.getElementById("unknown").replaceChildren(...folders.map((f) => el("div",
    { class: "unknown-row", "data-folder": f.folder },
    el("div", {}, el("strong", { text: f.folder }),
      el("span", { class: "meta", text: ` · ${f.files} file${f.files === 1 ? "" : "s"} waiting`
        + ` since ${clock(f.oldest)}` })),
    linkForm(f.folder, "", "", "Link"))));
}

function renderAthletes(links) {
  const box = document.getElementById("athlete-list");
  if (!links.length) {
    box.replaceChildren(el("p", { class: "empty",
      text: "No athletes linked yet. Folders named by an athlete's UUID need no link." }));
    return;
  }
  box.replaceChildren(el("ul", { class: "athletes" }, ...links.map((a) => {
    const li = el("li", { class: "row", "data-folder": a.folder },
      el("div", {}, el("div", { class: "file",
        text: a.name && a.name !== a.folder ? `${a.name} (${a.folder})` : a.folder }),
        el("div", { class: "meta", text: a.athlete_id + " · " + (a.source === "config"
          ? "set up by the station's admin" : `set by ${a.set_by} (${a.set_where}) ${clock(a.set_at)}`) })));
    if (a.source === "table") {
      const edit = el("button", { type: "button", class: "btn small", text: "Edit" });
      const remove = el("button", { type: "button", class: "btn small quiet", text: "Remove" });
      edit.addEventListener("click", () => {
        li.append(linkForm(a.folder, a.athlete_id, a.name, "Save"));
        edit.disabled = true;
      });
      remove.addEventListener("click", async () => {
        if (!window.confirm(`Unlink ${a.folder}? Files already uploaded are not touched.`)) return;
        try {
          await postJson("/api/athletes", { folder: a.folder, remove: true });
          say(`Unlinked ${a.folder}.`);
        } catch (ex) {
          say(`That did not work: ${ex.message}`, true);
        }
        loadAthletes(true);
      });
      li.append(el("div", { class: "side" }, edit, remove));
    }
    return li;
  })));
}

document.addEventListener("visibilitychange", () => { if (!document.hidden) loadAthletes(false); });
loadAthletes(true);
