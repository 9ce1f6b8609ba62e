// The page for people: a diary text in, the emotion reading as bars and the tracks out.
// Plain JavaScript, no build step; everything it loads comes from this server. The emotion
// names and the text limit are read from the API's own OpenAPI document, so the page and the
// API cannot disagree about them.
"use strict";

const EMOTIONS = ["angry", "anxious", "embarrassed", "happy", "heartache", "sad"];
const state = {
  names: Object.fromEntries(EMOTIONS.map((e) => [e, e])),
  maxLength: 5000,
  shown: false, // results are on the page: changing a choice asks again
  controller: null,
};
const $ = (id) => document.getElementById(id);

async function loadContract() {
  try {
    const response = await fetch("openapi.json");
    const schemas = (await response.json()).components.schemas;
    for (const [emotion, property] of Object.entries(schemas.Emotions.properties)) {
      state.names[emotion] = property.description || emotion;
    }
    state.maxLength = schemas.RecommendRequest.properties.text.maxLength || state.maxLength;
  } catch {
    // The page still works with English names and the default limit.
  }
  const target = $("target");
  for (const emotion of EMOTIONS) {
    target.append(new Option(state.names[emotion], emotion));
  }
  updateCount();
}

async function loadGenres(attempt = 0) {
  try {
    const response = await fetch("genres");
    if (response.status === 503 && attempt < 30) {
      setTimeout(() => loadGenres(attempt + 1), 2000); // the service is still loading
      return;
    }
    if (!response.ok) return;
    const select = $("genre");
    for (const genre of (await response.json()).genres) select.append(new Option(genre, genre));
  } catch {
    // Without the list the page works unfiltered.
  }
}

function updateCount() {
  const length = $("diary").value.length;
  const count = $("count");
  count.textContent = `${length.toLocaleString("ko-KR")} / ${state.maxLength.toLocaleString("ko-KR")}자`;
  count.classList.toggle("over", length > state.maxLength);
}

function showError(message) {
  const error = $("error");
  error.textContent = message;
  error.classList.add("shown");
  $("status").textContent = "";
}

function clearError() {
  $("error").textContent = "";
  $("error").classList.remove("shown");
}

function readYear(id, label) {
  const input = $(id);
  if (input.value === "" && input.validity.valid) return null;
  const year = Number(input.value);
  if (!input.validity.valid || !Number.isFinite(year) || year < 0 || year > 9999) {
    throw new Error(`${label}에는 0부터 9999 사이의 연도를 적어 주세요.`);
  }
  return year;
}

function filters() {
  const chosen = {};
  if ($("genre").value) chosen.genre = $("genre").value;
  const yearMin = readYear("year-min", "'이 해부터'");
  const yearMax = readYear("year-max", "'이 해까지'");
  if (yearMin !== null) chosen.year_min = yearMin;
  if (yearMax !== null) chosen.year_max = yearMax;
  return chosen;
}

function requestBody(text) {
  const body = { text, k: 10, detail: "sentences" };
  if ($("focus-end").checked) body.focus = "end";
  const target = $("target").value;
  if (target) {
    body.target = target;
    body.shift_strength = Number($("shift").value) / 100;
  }
  const chosen = filters();
  if (Object.keys(chosen).length) body.filters = chosen;
  return body;
}

// A playlist from the text's mood to the chosen one (without one: a gentle lift to happy).
function playlistBody(text) {
  const body = { text, n: 8 };
  if ($("target").value) body.target = $("target").value;
  const chosen = filters();
  if (Object.keys(chosen).length) body.filters = chosen;
  return body;
}

// An error answer in words a person can act on; the server's own message for anything else.
function describeError(status, error) {
  const message = (error && error.message) || "";
  if (status === 503) {
    return "서비스가 아직 준비 중이에요(감정 모델과 노래 목록을 불러오는 중). 잠시 후 다시 눌러 주세요.";
  }
  if (status === 413) return "글이 너무 커서 보낼 수 없어요. 조금 줄여 주세요.";
  if (message.startsWith("'text' is empty")) return "먼저 오늘 하루를 몇 줄 적어 주세요.";
  const tooLong = message.match(/^'text' is \d+ characters; the limit is (\d+)/);
  if (tooLong) {
    return `글이 너무 길어요. ${Number(tooLong[1]).toLocaleString("ko-KR")}자까지 쓸 수 있어요.`;
  }
  if (message.startsWith("unknown filter") || message.includes("needs a 'year' column")) {
    return "이 노래 목록으로는 그 조건으로 거를 수 없어요. 걸러 보기 조건을 바꿔 주세요.";
  }
  return `요청을 처리하지 못했어요 (HTTP ${status}): ${message || "알 수 없는 오류"}`;
}

function recommend() {
  return ask("recommend", requestBody, render, "노래를 찾는 중이에요…");
}

function makePlaylist() {
  return ask("playlist", playlistBody, renderPlaylist, "플레이리스트를 만드는 중이에요…");
}

async function ask(path, makeBody, show, waiting) {
  clearError();
  const text = $("diary").value;
  if (!text.trim()) {
    showError("먼저 오늘 하루를 몇 줄 적어 주세요. 빈 글로는 노래를 찾을 수 없어요.");
    $("diary").focus();
    return;
  }
  if (text.length > state.maxLength) {
    showError(
      `글이 너무 길어요: 지금 ${text.length.toLocaleString("ko-KR")}자예요. ` +
        `${state.maxLength.toLocaleString("ko-KR")}자까지 쓸 수 있어요.`,
    );
    $("diary").focus();
    return;
  }
  let body;
  try {
    body = makeBody(text);
  } catch (error) {
    showError(error.message);
    return;
  }
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  $("status").textContent = waiting;
  $("submit").setAttribute("aria-busy", "true");
  try {
    const response = await fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    let data = null;
    try {
      data = await response.json();
    } catch {
      // not JSON: described by its status below
    }
    if (controller !== state.controller) return; // a newer request is on its way
    if (!response.ok || data === null) {
      showError(describeError(response.status, data && data.error));
      return;
    }
    show(data, body);
  } catch (error) {
    if (error.name === "AbortError") return;
    showError("서버에 연결하지 못했어요. 네트워크나 서버 상태를 확인하고 다시 눌러 주세요.");
  } finally {
    if (controller === state.controller) {
      $("submit").removeAttribute("aria-busy");
      state.controller = null;
    }
  }
}

function percent(p) {
  return `${Math.round(p * 100)}%`;
}

function renderBars(emotions) {
  const bars = $("bars");
  bars.replaceChildren();
  const top = strongest(emotions);
  for (const emotion of EMOTIONS) {
    const item = document.createElement("li");
    item.className = emotion === top ? "bar top" : "bar";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = state.names[emotion];
    const track = document.createElement("span");
    track.className = "track";
    track.setAttribute("aria-hidden", "true");
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.width = percent(emotions[emotion]);
    track.append(fill);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = percent(emotions[emotion]);
    item.append(name, track, value);
    bars.append(item);
  }
}

function renderTrack(track) {
  const item = document.createElement("li");
  item.className = "song";
  const title = document.createElement("h3");
  title.textContent = track.title;
  const meta = document.createElement("p");
  meta.className = "meta";
  meta.textContent = [track.artist, track.genre, track.year].filter((v) => v != null && v !== "").join(" · ");
  const score = document.createElement("p");
  score.className = "score";
  score.textContent = `일치도 ${track.score.toFixed(2)}`;
  const why = document.createElement("p");
  why.className = "why";
  why.textContent = track.explanation;
  const similar = document.createElement("button");
  similar.type = "button";
  similar.className = "similar";
  similar.textContent = "비슷한 노래";
  similar.setAttribute("aria-expanded", "false");
  const list = document.createElement("ol");
  list.className = "similar-list";
  list.hidden = true;
  list.setAttribute("aria-live", "polite");
  similar.addEventListener("click", () => showSimilar(track.track_id, similar, list));
  item.append(title, meta, score, why, similar, list);
  return item;
}

// The songs nearest one track by emotion, under it; a second click hides them.
async function showSimilar(trackId, button, list) {
  if (!list.hidden) {
    list.hidden = true;
    button.setAttribute("aria-expanded", "false");
    return;
  }
  clearError();
  try {
    const response = await fetch(`tracks/${encodeURIComponent(trackId)}/similar?k=5`);
    const data = await response.json();
    if (!response.ok) {
      showError(describeError(response.status, data && data.error));
      return;
    }
    list.replaceChildren(
      ...data.tracks.map((similar) => {
        const item = document.createElement("li");
        const mood = strongest(similar.emotions);
        item.textContent = `${similar.title} — ${similar.artist} (${state.names[mood]} ${percent(similar.emotions[mood])})`;
        return item;
      }),
    );
    if (!data.tracks.length) {
      list.append(Object.assign(document.createElement("li"), { textContent: "비슷한 노래가 없어요." }));
    }
    list.hidden = false;
    button.setAttribute("aria-expanded", "true");
  } catch {
    showError("서버에 연결하지 못했어요. 네트워크나 서버 상태를 확인하고 다시 눌러 주세요.");
  }
}

function strongest(emotions) {
  return EMOTIONS.reduce((a, b) => (emotions[b] > emotions[a] ? b : a));
}

// Each sentence with its strongest emotion; the dominant ones starred.
function renderArc(data) {
  const sentences = data.sentences || [];
  $("arc").hidden = sentences.length < 2;
  $("sentences").replaceChildren(
    ...sentences.map((sentence, i) => {
      const item = document.createElement("li");
      const dominant = (data.dominant || []).includes(i);
      item.className = dominant ? "sentence dominant" : "sentence";
      const mood = document.createElement("span");
      mood.className = "mood";
      const top = strongest(sentence.emotions);
      mood.textContent = `${dominant ? "★ " : ""}${state.names[top]} ${percent(sentence.emotions[top])}`;
      item.append(`${sentence.text} `, mood);
      return item;
    }),
  );
}

function renderPlaylist(data) {
  renderBars(data.emotions);
  $("reading").hidden = false;
  $("playlist-tracks").replaceChildren(
    ...data.tracks.map((track) => {
      const item = renderTrack(track);
      const step = document.createElement("p");
      step.className = "step";
      step.textContent = `${track.step}단계 · 목표 ${state.names[strongest(track.goal)]} ${percent(track.goal[strongest(track.goal)])}`;
      item.prepend(step);
      return item;
    }),
  );
  const modes = {
    target: `지금 기분에서 ${state.names[data.target]}까지 한 걸음씩 옮겨 가요.`,
    lift: `지금 기분에서 ${state.names[data.target]} 쪽으로 반쯤 끌어올려요.`,
    stay: "지금의 좋은 기분을 그대로 이어 가요.",
  };
  $("playlist-note").textContent = data.tracks.length
    ? modes[data.mode]
    : "조건에 맞는 노래가 없어요. 장르나 연도 조건을 바꿔 보세요.";
  $("playlist").hidden = false;
  $("status").textContent = `플레이리스트 ${data.tracks.length}곡을 만들었어요.`;
}

function render(data, body) {
  renderBars(data.emotions);
  renderArc(data);
  $("reading").hidden = false;
  const tracks = $("tracks");
  tracks.replaceChildren(...data.tracks.map(renderTrack));
  const mood = body.target
    ? `${state.names[body.target]} 쪽으로 ${percent(body.shift_strength)} 옮긴 기분에 맞춘 노래예요.`
    : "글에서 읽은 기분에 맞춘 노래예요.";
  $("results-note").textContent = data.tracks.length
    ? mood
    : "조건에 맞는 노래가 없어요. 장르나 연도 조건을 바꿔 보세요.";
  $("results").hidden = false;
  state.shown = true;
  $("status").textContent = `노래 ${data.tracks.length}곡을 찾았어요.`;
}

function again() {
  if (state.shown) recommend();
}

function updateShift() {
  const shift = $("shift");
  shift.disabled = !$("target").value;
  $("shift-value").textContent = `${shift.value}%`;
}

document.addEventListener("DOMContentLoaded", () => {
  loadContract();
  loadGenres();
  $("form").addEventListener("submit", (event) => {
    event.preventDefault();
    recommend();
  });
  $("diary").addEventListener("input", updateCount);
  $("diary").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      recommend();
    }
  });
  $("playlist-button").addEventListener("click", makePlaylist);
  $("focus-end").addEventListener("change", again);
  $("target").addEventListener("change", () => {
    updateShift();
    again();
  });
  $("shift").addEventListener("input", updateShift);
  for (const id of ["shift", "genre", "year-min", "year-max"]) {
    $(id).addEventListener("change", again);
  }
  updateShift();
});
