// The /ui page: a search form over the service's public REST API, with the hits drawn
// as rag_splade.views draws them in a notebook (same markup classes, same views.css).
//
// Data from the service (passages, terms, metadata) only ever reaches the page as text
// (textContent, attributes), never as markup. Spans are code-point offsets (Python str
// indices), so passages are cut with Array.from, not with UTF-16 string indices.
"use strict";

(() => {
  const KEY_STORAGE = "rag_splade.api_key";
  const BAR_TERMS = 40; // as rag_splade.views.BAR_TERMS
  const EXPANSION_CHIPS = 12; // as rag_splade.views.EXPANSION_CHIPS
  const SOURCE_KEYS = ["title", "source", "url", "path"];
  const api = (path) => new URL(`../${path}`, window.location.href).toString();

  let apiKey = "";
  let tenant = "";
  const $ = (id) => document.getElementById(id);

  function el(tag, attributes = {}, text = undefined) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "className") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const num = (value) => (value === null || value === undefined ? "—" : value.toFixed(4));

  // --- the key -----------------------------------------------------------------------

  function status(node, text, state) {
    node.textContent = text;
    if (state) node.dataset.state = state;
    else delete node.dataset.state;
  }

  function headers() {
    const h = { "content-type": "application/json", accept: "application/json" };
    if (apiKey) h["x-api-key"] = apiKey;
    if (tenant) h["x-tenant"] = tenant;
    return h;
  }

  function keyMessage(code) {
    if (code === 401) {
      return apiKey
        ? "The service refused this API key (401). Check the key and connect again."
        : "The service needs an API key (401): enter it above and connect.";
    }
    return "";
  }

  async function connect(event) {
    if (event) event.preventDefault();
    apiKey = $("api-key").value.trim();
    tenant = $("tenant").value.trim();
    if (!$("remember-key").checked) remember(""); // forgetting needs no answer first
    const node = $("key-status");
    status(node, "Checking the key…");
    try {
      const response = await fetch(api("v1/stats"), { headers: headers() });
      const body = await readJson(response);
      if (response.ok) {
        status(
          node,
          `Connected: ${body.documents} documents, ${body.chunks} chunks` +
            ` (tenant ${body.tenant}; reranker: ${body.rerank_model || "none"}).`,
          "ok",
        );
        remember($("remember-key").checked ? apiKey : "");
        offerRerank(Boolean(body.rerank_model));
        $("search-form").dataset.connected = "";
        return true;
      }
      status(node, keyMessage(response.status) || errorText(response, body), "error");
    } catch (error) {
      status(node, `The service did not answer: ${error.message}`, "error");
    }
    delete $("search-form").dataset.connected;
    return false;
  }

  // Session storage only, and only a key the service accepted; where the browser blocks
  // storage the key simply stays in memory.
  function remember(key) {
    try {
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      else sessionStorage.removeItem(KEY_STORAGE);
    } catch {
      /* storage blocked: nothing is kept */
    }
  }

  function remembered() {
    try {
      return sessionStorage.getItem(KEY_STORAGE) || "";
    } catch {
      return "";
    }
  }

  // A service with no reranker refuses rerank (422): the boxes say so before a search, in
  // words next to them. A box the person had ticked is not dropped quietly: `rerankDropped`
  // stops that search with a message.
  let rerankDropped = false;

  function offerRerank(available) {
    for (const box of document.querySelectorAll('[data-field="rerank"]')) {
      if (!available && box.checked) rerankDropped = true;
      box.disabled = !available;
      if (!available) box.checked = false;
      $(box.getAttribute("aria-describedby")).hidden = available;
    }
  }

  async function readJson(response) {
    try {
      return await response.json();
    } catch {
      return {};
    }
  }

  function errorText(response, body) {
    const message = body && typeof body.message === "string" ? body.message : response.statusText;
    return `${response.status} ${body && body.error ? body.error : "error"}: ${message}`;
  }

  // --- the request -------------------------------------------------------------------

  function setting(name) {
    const fieldset = $(`setting-${name}`);
    const field = (f) => fieldset.querySelector(`[data-field="${f}"]`);
    const out = { mode: field("mode").value, rerank: field("rerank").checked };
    if (field("fusion").value) out.fusion = field("fusion").value;
    const sparse = field("weight-sparse").value.trim();
    const dense = field("weight-dense").value.trim();
    if (sparse || dense) {
      if (!sparse || !dense) {
        throw new Error(`Setting ${name.toUpperCase()}: give both weights (sparse and dense), or neither.`);
      }
      out.weights = [Number(sparse), Number(dense)];
    }
    return out;
  }

  function common() {
    const query = $("query").value.trim();
    if (!query) throw new Error("Enter a query.");
    const topK = Number($("top-k").value);
    if (!Number.isInteger(topK) || topK < 1) throw new Error("top_k must be a whole number of at least 1.");
    const body = {
      query,
      top_k: topK,
      explain: $("explain").checked,
      context: true,
      context_style: $("context-style").value,
    };
    const filters = $("filters").value.trim();
    if (filters) {
      let parsed;
      try {
        parsed = JSON.parse(filters);
      } catch (error) {
        throw new Error(`filters is not JSON (${error.message}); write an object such as {"source": "faq"}.`);
      }
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
        throw new Error('filters must be a JSON object, such as {"source": "faq"}.');
      }
      body.filters = parsed;
    }
    return body;
  }

  async function searchOnce(body) {
    const response = await fetch(api("v1/search"), {
      method: "POST",
      headers: headers(),
      body: JSON.stringify(body),
    });
    const answer = await readJson(response);
    if (!response.ok) {
      const error = new Error(keyMessage(response.status) || errorText(response, answer));
      error.status = response.status;
      throw error;
    }
    return answer;
  }

  function showMessage(text) {
    const node = $("message");
    node.textContent = text;
    node.hidden = !text;
  }

  async function search(event) {
    event.preventDefault();
    showMessage("");
    const compare = $("compare").checked;
    let bodies;
    try {
      const base = common();
      bodies = [{ ...base, ...setting("a") }];
      if (compare) bodies.push({ ...base, ...setting("b") });
    } catch (error) {
      showMessage(error.message);
      return;
    }
    const button = $("search");
    button.disabled = true;
    $("results").setAttribute("aria-busy", "true");
    try {
      const answers = await Promise.all(bodies.map(searchOnce));
      render(answers, bodies);
    } catch (error) {
      showMessage(error.status ? error.message : `The service did not answer: ${error.message}`);
      $("results").hidden = true; // the last answer's hits would read as this one's
    } finally {
      button.disabled = false;
      $("results").removeAttribute("aria-busy");
    }
  }

  // --- drawing -----------------------------------------------------------------------

  function describe(body) {
    const parts = [body.mode];
    if (body.fusion) parts.push(body.fusion);
    if (body.weights) parts.push(`weights ${body.weights.join(", ")}`);
    if (body.rerank) parts.push("rerank");
    return parts.join(" · ");
  }

  function render(answers, bodies) {
    const compare = answers.length > 1;
    for (const note of document.querySelectorAll(".rs-copy ~ .rs-status")) status(note, "");
    $("results").hidden = false;
    $("column-b").hidden = !compare;
    if (compare) $("columns").dataset.compare = "";
    else delete $("columns").dataset.compare;
    const terms = answers.find((a) => a.query_terms.length)?.query_terms || [];
    $("query-terms").replaceChildren(queryTerms(terms));
    const ranks = answers.map((a) => new Map(a.hits.map((h, i) => [h.id, i + 1])));
    answers.forEach((answer, n) => {
      const name = n === 0 ? "a" : "b";
      const other = compare ? ranks[1 - n] : null;
      $(`summary-${name}`).textContent =
        `${describe(bodies[n])}: ${answer.hits.length} hits`;
      $(`hits-${name}`).replaceChildren(hits(answer.hits, other, n === 0 ? "a" : "b"));
      $(`context-${name}`).textContent = answer.context || "";
    });
  }

  function queryTerms(terms) {
    const fragment = document.createDocumentFragment();
    const strongest = Math.max(0, ...terms.map((t) => t.weight)) || 1;
    for (const t of [...terms].sort((x, y) => y.weight - x.weight)) {
      let className = "rs-qterm";
      if (t.expansion) className += " rs-expansion";
      if (t.function_word) className += " rs-function-word";
      const item = el("li", { className, "data-term": t.term, "data-weight": t.weight });
      item.append(el("span", { className: "rs-qterm-label", title: t.pieces.join(" ") }, t.term));
      const note = (t.expansion ? "expansion" : "query word") + (t.function_word ? ", function word" : "");
      item.append(el("span", { className: "rs-sr" }, ` (${note})`));
      const track = el("span", { className: "rs-qterm-track" });
      const fill = el("span", { className: "rs-qterm-fill" });
      fill.style.width = `${Math.max(0, Math.min(100, (100 * t.weight) / strongest)).toFixed(2)}%`;
      track.append(fill);
      item.append(track, el("span", { className: "rs-qterm-value" }, num(t.weight)));
      fragment.append(item);
    }
    return fragment;
  }

  // The sparse score a hit's bar stands for: its sparse_score, or for a hit the sparse list
  // did not return (found by dense only) the sum its explanation gives, as
  // rag_splade.views.bar_score.
  function barScore(hit) {
    if (hit.sparse_score !== null && hit.sparse_score !== undefined) return hit.sparse_score;
    const e = hit.explanation;
    if (!e) return 0;
    return e.terms.reduce((sum, t) => sum + t.contribution, 0) + (e.omitted_contribution || 0);
  }

  function hits(list, otherRanks, side) {
    const fragment = document.createDocumentFragment();
    const scale = Math.max(0, ...list.map(barScore)) || 1;
    list.forEach((hit, i) => fragment.append(hitItem(hit, i + 1, scale, otherRanks, side)));
    return fragment;
  }

  function sourceOf(hit) {
    for (const key of SOURCE_KEYS) {
      const value = hit.metadata[key];
      if (typeof value === "string" && value) return value;
    }
    return hit.doc_id;
  }

  function change(rank, otherRank, side) {
    const [a, b] = side === "a" ? [rank, otherRank] : [otherRank, rank];
    if (a === undefined) return el("span", { className: "rs-change", "data-change": "only" }, "only in B");
    if (b === undefined) return el("span", { className: "rs-change", "data-change": "only" }, "only in A");
    const delta = a - b;
    const direction = delta > 0 ? "up" : delta < 0 ? "down" : "same";
    const arrow = delta > 0 ? ` ↑${delta}` : delta < 0 ? ` ↓${-delta}` : " =";
    return el(
      "span",
      { className: "rs-change", "data-change": direction, title: "rank in A → rank in B" },
      `A #${a} → B #${b}${arrow}`,
    );
  }

  function hitItem(hit, rank, scale, otherRanks, side) {
    const item = el("li", { className: "rs-hit", "data-id": hit.id, "data-doc-id": hit.doc_id });
    const head = el("div", { className: "rs-hit-head" });
    head.append(
      el("span", { className: "rs-rank" }, `#${rank}`),
      el("span", { className: "rs-source" }, sourceOf(hit)),
      el("span", { className: "rs-id" }, `${hit.doc_id}#${hit.chunk_index}`),
    );
    if (otherRanks) head.append(change(rank, otherRanks.get(hit.id), side));
    item.append(head, scores(hit));
    const explanation = hit.explanation;
    if (!explanation) {
      item.append(
        el("p", { className: "rs-passage", lang: "ja" }, hit.text),
        el("p", { className: "rs-note" }, "no explanation (search with explain)"),
      );
      return item;
    }
    const terms = explanation.terms;
    item.append(passage(hit.text, terms));
    const chips = expansions(terms);
    if (chips) item.append(...chips);
    const inList = hit.sparse_score !== null && hit.sparse_score !== undefined;
    item.append(...bar(terms, explanation, barScore(hit), scale, inList), table(terms));
    return item;
  }

  function scores(hit) {
    const list = el("ul", { className: "rs-scores", "aria-label": "ranks and scores" });
    const legs = [
      ["fused", null, hit.score],
      ["sparse", hit.sparse_rank, hit.sparse_score],
      ["dense", hit.dense_rank, hit.dense_score],
      ["rerank", hit.rerank_rank, hit.rerank_score],
    ];
    for (const [leg, rank, score] of legs) {
      if (leg !== "fused" && rank === null && score === null) {
        list.append(el("li", { className: "rs-score", "data-leg": leg, "data-absent": true }, `${leg} —`));
        continue;
      }
      const shown = rank !== null ? `#${rank} · ` : "";
      list.append(el("li", { className: "rs-score", "data-leg": leg }, `${leg} ${shown}${num(score)}`));
    }
    return list;
  }

  function tip(term) {
    const kind = term.kind + (term.function_word ? ", function word" : "");
    return (
      `${term.term} (${kind})\n` +
      `query ${num(term.query_weight)} × document ${num(term.document_weight)} = ${num(term.contribution)}`
    );
  }

  // The passage cut at every span edge (code points), as rag_splade.views.passage_segments.
  function passage(text, terms) {
    const chars = Array.from(text);
    const spans = [];
    terms.forEach((t, i) => {
      if (!t.literal) return;
      for (const [s, e] of t.spans) if (s >= 0 && s < e && e <= chars.length) spans.push([i, s, e]);
    });
    const edges = [...new Set([0, chars.length, ...spans.flatMap(([, s, e]) => [s, e])])].sort((x, y) => x - y);
    const node = el("p", { className: "rs-passage", lang: "ja" });
    for (let k = 0; k + 1 < edges.length; k++) {
      const [a, b] = [edges[k], edges[k + 1]];
      const piece = chars.slice(a, b).join("");
      const covering = spans.filter(([, s, e]) => s <= a && b <= e);
      if (!covering.length) {
        node.append(document.createTextNode(piece));
        continue;
      }
      const matched = covering.map(([i]) => terms[i]);
      const kind = matched.some((t) => t.kind === "whole") ? "whole" : "partial";
      let className = `rs-match rs-tip rs-${kind}`;
      if (matched.every((t) => t.function_word)) className += " rs-function-word";
      const text_ = matched.map(tip).join("\n");
      node.append(
        el(
          "mark",
          {
            className,
            tabindex: "0",
            "data-kind": kind,
            "data-terms": covering.map(([i]) => i).join(" "),
            "data-spans": covering.map(([i, s, e]) => `${i}:${s}:${e}`).join(" "),
            "data-tip": text_,
            "aria-label": text_,
          },
          piece,
        ),
      );
    }
    return node;
  }

  function expansions(terms) {
    const found = [];
    terms.forEach((t, i) => {
      if (t.kind === "expansion") found.push([i, t]);
    });
    if (!found.length) return null;
    const list = el("ul", { className: "rs-expansions" });
    for (const [i, t] of found.slice(0, EXPANSION_CHIPS)) {
      const text_ = tip(t);
      list.append(
        el(
          "li",
          {
            className: `rs-term rs-tip rs-expansion${t.function_word ? " rs-function-word" : ""}`,
            tabindex: "0",
            "data-kind": "expansion",
            "data-terms": i,
            "data-tip": text_,
            "aria-label": text_,
          },
          t.term,
        ),
      );
    }
    if (found.length > EXPANSION_CHIPS) {
      list.append(el("li", { className: "rs-note" }, `and ${found.length - EXPANSION_CHIPS} more`));
    }
    return [el("div", { className: "rs-expansions-label" }, "expansion terms (not in the passage):"), list];
  }

  function bar(terms, explanation, sparseScore, scale, inList) {
    const drawn = terms.slice(0, BAR_TERMS);
    let omitted = explanation.omitted_contribution || 0;
    let omittedTerms = explanation.omitted_terms || 0;
    for (const t of terms.slice(BAR_TERMS)) {
      omitted += t.contribution;
      omittedTerms += 1;
    }
    const total = drawn.reduce((sum, t) => sum + t.contribution, 0) + omitted || 1;
    const node = el("div", {
      className: "rs-bar",
      role: "img",
      "aria-label": `term contributions, sum ${num(sparseScore)}`,
    });
    node.style.width = `${Math.max(0, Math.min(100, (100 * sparseScore) / scale)).toFixed(2)}%`;
    drawn.forEach((t, i) => {
      const segment = el("span", {
        className: `rs-seg rs-${t.kind}${t.function_word ? " rs-function-word" : ""}`,
        "data-terms": i,
        "data-kind": t.kind,
        "data-contribution": t.contribution,
        title: tip(t),
      });
      segment.style.width = `${((100 * t.contribution) / total).toFixed(3)}%`;
      node.append(segment);
    });
    if (omittedTerms) {
      const segment = el("span", {
        className: "rs-seg rs-omitted",
        "data-contribution": omitted,
        title: `${omittedTerms} weaker terms: ${num(omitted)}`,
      });
      segment.style.width = `${((100 * omitted) / total).toFixed(3)}%`;
      node.append(segment);
    }
    const count = terms.length + (explanation.omitted_terms || 0);
    const caption = el(
      "div",
      { className: "rs-bar-caption" },
      `sparse score ${num(sparseScore)} = sum of ${count} term contributions` +
        (inList ? "" : " (not in the sparse list: found by dense)"),
    );
    return [node, caption];
  }

  function table(terms) {
    const details = el("details", { className: "rs-details" });
    details.append(el("summary", {}, "terms"));
    const tableNode = el("table", { className: "rs-table" });
    const head = el("tr");
    for (const name of ["term", "kind", "query", "document", "contribution", "pieces"]) {
      head.append(el("th", { scope: "col" }, name));
    }
    const thead = el("thead");
    thead.append(head);
    tableNode.append(thead);
    const body = el("tbody");
    for (const t of terms.slice(0, BAR_TERMS)) {
      const row = el("tr");
      let pieces = t.matched_pieces.join(" ");
      if (t.kind === "partial") pieces += ` of ${t.pieces.join(" ")}`;
      row.append(
        el("td", {}, t.term),
        el("td", {}, t.kind + (t.function_word ? " (function word)" : "")),
        el("td", { className: "rs-num" }, num(t.query_weight)),
        el("td", { className: "rs-num" }, num(t.document_weight)),
        el("td", { className: "rs-num" }, num(t.contribution)),
        el("td", {}, pieces),
      );
      body.append(row);
    }
    tableNode.append(body);
    details.append(tableNode);
    return details;
  }

  // --- copy --------------------------------------------------------------------------

  async function copy(event) {
    const button = event.currentTarget;
    const target = $(button.dataset.target);
    const note = button.parentElement.querySelector(".rs-status");
    if (!target.textContent) {
      status(note, "Nothing to copy: search first.", "error");
      return;
    }
    try {
      await navigator.clipboard.writeText(target.textContent);
      status(note, "Copied.", "ok");
    } catch {
      const range = document.createRange();
      range.selectNodeContents(target);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      status(note, "Selected: press Ctrl+C (⌘C) to copy.", "ok");
    }
  }

  // --- start -------------------------------------------------------------------------

  function start() {
    const key = remembered();
    if (key) {
      $("api-key").value = key;
      $("remember-key").checked = true;
    }
    // a browser may restore the Compare box ticked on reload: B follows it
    $("setting-b").disabled = !$("compare").checked;
    $("key-form").addEventListener("submit", async (event) => {
      await connect(event);
      if (rerankDropped) {
        rerankDropped = false; // said here, so the next search runs
        showMessage("Rerank is off: this service has no reranker (RAG_SPLADE_RERANK_MODEL).");
      }
    });
    let searches = 0;
    $("search-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      if ($("search").disabled) return; // one search at a time: Enter while one runs
      $("search").disabled = true;
      try {
        const changed = $("api-key").value.trim() !== apiKey || $("tenant").value.trim() !== tenant;
        if (changed || !("connected" in $("search-form").dataset)) {
          if (!(await connect())) {
            showMessage($("key-status").textContent);
            $("results").hidden = true;
            return;
          }
        }
        if (rerankDropped) {
          rerankDropped = false;
          showMessage(
            "Not searched: rerank was ticked, but this service has no reranker " +
              "(RAG_SPLADE_RERANK_MODEL). Search again to run without it.",
          );
          return;
        }
        await search(event);
      } finally {
        $("search").disabled = false;
        searches += 1;
        document.body.dataset.searches = String(searches); // what a test waits for
      }
    });
    $("compare").addEventListener("change", () => {
      $("setting-b").disabled = !$("compare").checked;
    });
    for (const button of document.querySelectorAll(".rs-copy")) button.addEventListener("click", copy);
    document.body.dataset.ready = "";
  }

  start();
})();
