// toro web UI: simulated login, ask a question, history with live updates
// over the WebSocket. Every piece of data reaches the page through
// textContent / createElement only (never innerHTML), so question, answer
// and source text can never inject markup or script.

const USER_KEY = 'toro.userId';
const TOKEN_KEY = 'toro.accessToken'; // jwt mode: the pasted token, this tab only
const USER_RE = /^[A-Za-z0-9._@:-]{1,128}$/;
const QUESTION_MAX = 2000;
const PAGE_SIZE = 20;
const TOAST_MAX = 2;
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;
const PING_EVERY_MS = 25000;
const SILENCE_LIMIT_MS = 75000; // server pings every 30 s; longer silence = dead socket

const STATUS_LABEL = {
  pending: 'Pendente',
  processing: 'Processando',
  completed: 'Concluída',
  error: 'Erro',
};
const STATUS_RANK = { pending: 0, processing: 1, completed: 2, error: 2 };

const $ = (id) => document.getElementById(id);
const el = {
  loginView: $('login-view'), loginForm: $('login-form'), userId: $('user-id'), userIdError: $('user-id-error'),
  tokenField: $('token-field'), accessToken: $('access-token'),
  appView: $('app-view'), session: $('session'), userName: $('user-name'), logout: $('logout'),
  conn: $('conn'), connText: $('conn-text'),
  askForm: $('ask-form'), question: $('question'), questionCount: $('question-count'),
  questionError: $('question-error'), askButton: $('ask-button'),
  history: $('history'), historyEmpty: $('history-empty'), historyError: $('history-error'),
  loadMore: $('load-more'), refresh: $('refresh'), toasts: $('toasts'),
  convStatus: $('conversation-status'), newConv: $('new-conversation'), convList: $('conversations'),
  convMore: $('conversations-more'), convError: $('conversations-error'), showAll: $('show-all'),
};

const state = {
  user: null,
  // Bearer token from POST /auth/dev-login (simulated login) when the server
  // requires authentication; null when it runs with --auth none. Kept in
  // memory only: a reload logs the remembered user in again.
  token: null,
  // How the server authenticates (GET /healthz "auth"): "dev" issues tokens
  // through the simulated login, "jwt" needs a token issued elsewhere (pasted
  // at login, kept in sessionStorage), "none" needs nothing.
  authMode: 'dev',
  items: new Map(), // question_id -> question record
  nextToken: null,
  loadedOnce: false,
  ws: null,
  wsAttempt: 0,
  wsTimer: null,
  wsConnecting: false,
  pingTimer: null,
  lastMessageAt: 0,
  everRegistered: false,
  // Conversations: the one new questions continue (null: the next question
  // starts a new one), the list shown (GET /conversations) and its cursor,
  // and the conversation the history is narrowed to (null: every question).
  conversationId: null,
  conversations: [],
  convNext: null,
  filter: null,
};

// ---------------------------------------------------------------- formatting

const dateFmt = new Intl.DateTimeFormat('pt-BR', { dateStyle: 'short', timeStyle: 'medium' });
const numFmt = new Intl.NumberFormat('pt-BR', { maximumFractionDigits: 1 });

function formatTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : dateFmt.format(d);
}

function durationText(fromIso, toIso) {
  const ms = new Date(toIso) - new Date(fromIso);
  if (!Number.isFinite(ms) || ms < 0) return '';
  return ms < 1000 ? `${Math.max(1, Math.round(ms))} ms` : `${numFmt.format(ms / 1000)} s`;
}

function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// Inline Markdown subset: **bold** and citation markers [n] that link to the
// n-th source of the answer. Everything else is plain text.
function renderInline(text, parent, ctx) {
  const re = /\*\*(.+?)\*\*|\[(\d{1,3})\]/g;
  let last = 0;
  let m;
  while ((m = re.exec(text)) !== null) {
    if (m.index > last) parent.append(document.createTextNode(text.slice(last, m.index)));
    if (m[1] !== undefined) {
      const strong = h('strong');
      renderInline(m[1], strong, ctx);
      parent.append(strong);
    } else {
      const n = Number(m[2]);
      if (n >= 1 && n <= ctx.sourceCount) {
        parent.append(h('a', {
          class: 'cite', href: `#${ctx.idPrefix}-${n}`, text: `[${n}]`,
          'aria-label': `Fonte ${n}`,
        }));
      } else {
        parent.append(document.createTextNode(m[0]));
      }
    }
    last = re.lastIndex;
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
}

// Block Markdown subset: paragraphs separated by blank lines, "- " / "* "
// bullet lists, "1. " numbered lists, "#" headings, "| a | b |" tables (the
// "|---|" row after the header ends the head), "> " notes; single newlines
// inside a paragraph become line breaks. The answer's first paragraph is its
// lead (class answer-lead); a "> " note (toro's no-recommendation statement)
// is a note box. Everything is built with DOM nodes and text, never HTML.
function tableCells(line) {
  return line.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim());
}

function renderTable(rows, ctx) {
  const table = h('table', { class: 'md-table' });
  const sep = rows.findIndex((r) => /^\|?\s*:?-{2,}/.test(r.trim()) && /^[\s|:-]+$/.test(r));
  const head = sep > 0 ? rows.slice(0, sep) : [];
  const body = rows.filter((r, i) => i !== sep && (sep <= 0 || i > sep));
  if (head.length) {
    const thead = h('thead');
    for (const r of head) {
      const tr = h('tr');
      for (const c of tableCells(r)) { const th = h('th', { scope: 'col' }); renderInline(c, th, ctx); tr.append(th); }
      thead.append(tr);
    }
    table.append(thead);
  }
  const tbody = h('tbody');
  for (const r of body) {
    const tr = h('tr');
    for (const c of tableCells(r)) { const td = h('td'); renderInline(c, td, ctx); tr.append(td); }
    tbody.append(tr);
  }
  table.append(tbody);
  return h('div', { class: 'md-table-wrap' }, table);
}

function renderMarkdown(text, ctx) {
  const frag = document.createDocumentFragment();
  const blocks = String(text).replace(/\r\n?/g, '\n').split(/\n[ \t]*\n+/);
  let leadDone = false;
  for (const block of blocks) {
    let list = null;
    let listKind = null;
    let para = null;
    let lastLi = null;
    let table = null;
    let note = null;
    const closeList = () => { list = null; listKind = null; lastLi = null; };
    const flushTable = () => {
      if (table) { frag.append(renderTable(table, ctx)); table = null; leadDone = true; }
    };
    for (const rawLine of block.split('\n')) {
      const line = rawLine.replace(/\s+$/, '');
      if (!line.trim()) continue;
      const bullet = /^\s*[-*•]\s+(.*)$/.exec(line);
      const numbered = /^\s*(\d{1,3})[.)]\s+(.*)$/.exec(line);
      const heading = /^\s*#{1,6}\s+(.*)$/.exec(line);
      const quote = /^\s*>\s?(.*)$/.exec(line);
      if (/^\s*\|/.test(line)) {
        closeList();
        para = null;
        note = null;
        (table ||= []).push(line);
        continue;
      }
      flushTable();
      if (quote) {
        closeList();
        para = null;
        if (!note) { note = h('p', { class: 'answer-note', role: 'note' }); frag.append(note); }
        else note.append(h('br'));
        renderInline(quote[1], note, ctx);
        continue;
      }
      note = null;
      if (bullet || numbered) {
        const kind = bullet ? 'ul' : 'ol';
        if (!list || listKind !== kind) {
          list = h(kind, { class: leadDone ? 'md-list' : 'md-list answer-lead' });
          leadDone = true;
          if (numbered && numbered[1] !== '1') list.setAttribute('start', numbered[1]);
          listKind = kind;
          frag.append(list);
        }
        lastLi = h('li');
        renderInline(bullet ? bullet[1] : numbered[2], lastLi, ctx);
        list.append(lastLi);
        para = null;
      } else if (heading) {
        closeList();
        para = null;
        const p = h('p', { class: 'md-heading' });
        renderInline(heading[1], p, ctx);
        frag.append(p);
      } else if (lastLi && /^\s+/.test(rawLine)) {
        lastLi.append(document.createTextNode(' '));
        renderInline(line.trim(), lastLi, ctx);
      } else {
        closeList();
        if (para) para.append(h('br'));
        else {
          para = h('p', { class: leadDone ? null : 'answer-lead' });
          leadDone = true;
          frag.append(para);
        }
        renderInline(line.trim(), para, ctx);
      }
    }
    flushTable();
  }
  return frag;
}

// ---------------------------------------------------------------- API

// code: the API's machine code (openapi.yaml ErrorCode) or a local one
// (network, timeout, token_required, token_user_mismatch); the page shows
// errorText(err), never the server's English `error` text.
class ApiError extends Error {
  constructor(message, status, code, retryAfter) {
    super(message);
    this.status = status;
    this.code = code || null;
    this.retryAfter = retryAfter || 0;
  }
}

const ERROR_TEXT = {
  rate_limited: 'muitas solicitações em pouco tempo; aguarde um instante e tente de novo',
  question_empty: 'a pergunta está vazia',
  question_too_long: `a pergunta passa de ${QUESTION_MAX} caracteres`,
  question_missing: 'a pergunta não foi enviada',
  question_invalid: 'a pergunta não é um texto válido',
  invalid_json: 'o pedido enviado não é um JSON válido',
  invalid_user_id: 'identificador de usuário inválido',
  invalid_parameter: 'parâmetro inválido na consulta',
  unknown_parameter: 'parâmetro desconhecido na consulta',
  invalid_request: 'pedido inválido',
  unauthorized: 'sessão inválida ou expirada; entre novamente',
  user_mismatch: 'o usuário não corresponde ao da sessão',
  forbidden: 'acesso negado',
  not_found: 'não encontrado',
  method_not_allowed: 'operação não permitida',
  request_timeout: 'o pedido demorou demais para chegar ao servidor',
  length_required: 'o pedido precisa informar o tamanho do corpo',
  payload_too_large: 'o pedido é grande demais',
  uri_too_long: 'o endereço do pedido é longo demais',
  unsupported_media_type: 'formato de pedido não suportado',
  misdirected_request: 'endereço do servidor não permitido',
  headers_too_large: 'os cabeçalhos do pedido são grandes demais',
  not_implemented: 'operação não suportada pelo servidor',
  invalid_conversation_id: 'conversa inválida; comece uma nova conversa',
  unavailable: 'o serviço está indisponível no momento; tente novamente em instantes',
  internal_error: 'erro interno do servidor',
  question_not_completed: 'só é possível avaliar uma resposta concluída',
  feedback_unsupported: 'este servidor não guarda avaliações',
  comment_too_long: 'o comentário passa de 1000 caracteres',
  invalid_rating: 'avaliação inválida',
  invalid_comment: 'o comentário não é um texto válido',
  network: 'falha de rede',
  timeout: 'o servidor demorou demais para responder',
  token_required: 'informe o token de acesso',
  token_user_mismatch: 'o token não pertence a este usuário',
};

// The Portuguese text of an error, by its code (then by HTTP status).
function errorText(err) {
  if (err && err.code === 'rate_limited' && err.retryAfter > 0) {
    return `muitas solicitações em pouco tempo; aguarde ${err.retryAfter} s e tente de novo`;
  }
  if (err && err.code && ERROR_TEXT[err.code]) return ERROR_TEXT[err.code];
  const status = err ? err.status : 0;
  if (status === 429) return ERROR_TEXT.rate_limited;
  if (status === 401) return ERROR_TEXT.unauthorized;
  if (status === 503) return ERROR_TEXT.unavailable;
  if (status >= 500) return ERROR_TEXT.internal_error;
  return status ? `erro inesperado (HTTP ${status})` : ERROR_TEXT.network;
}

async function request(path, options = {}) {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), 15000);
  const headers = { Accept: 'application/json', ...(options.headers || {}) };
  if (state.token && options.auth !== false) headers.Authorization = `Bearer ${state.token}`;
  try {
    const res = await fetch(path, { method: options.method, body: options.body, headers, signal: ctrl.signal });
    let body = null;
    try { body = await res.json(); } catch { /* not JSON */ }
    if (!res.ok || !body || body.success !== true) {
      const msg = body && typeof body.error === 'string' ? body.error : `HTTP ${res.status}`;
      const code = body && typeof body.code === 'string' ? body.code : null;
      const retry = Number.parseInt(res.headers.get('Retry-After') || '', 10);
      throw new ApiError(msg, res.status, code, Number.isFinite(retry) ? retry : 0);
    }
    return body.data;
  } catch (err) {
    if (err.name === 'AbortError') throw new ApiError('timeout', 0, 'timeout');
    if (err instanceof TypeError) throw new ApiError('network', 0, 'network');
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

// Simulated login: asks the server for a bearer token for this user id. A
// 404 means the server runs without authentication (the user id travels in
// the request instead).
// The subject of a JWT, read without verifying it (the server verifies).
function tokenSubject(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(Array.from(atob(part), (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join(''));
    const sub = JSON.parse(json).sub;
    return typeof sub === 'string' ? sub : null;
  } catch {
    return null;
  }
}

async function authenticate(user) {
  if (state.authMode === 'jwt') {
    let token = state.token;
    if (!token) { try { token = sessionStorage.getItem(TOKEN_KEY); } catch { /* storage disabled */ } }
    if (!token) throw new ApiError('token required', 0, 'token_required');
    if (tokenSubject(token) !== user) throw new ApiError('token of another user', 0, 'token_user_mismatch');
    state.token = token;
    return;
  }
  try {
    const data = await request('/auth/dev-login', {
      method: 'POST', auth: false,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ user_id: user }),
    });
    state.token = data.token;
  } catch (err) {
    if (err.status !== 404) throw err;
    state.token = null;
  }
}

// An API call; an expired or unknown token (server restarted with a new dev
// secret) is renewed once, transparently.
async function api(path, options = {}) {
  try {
    return await request(path, options);
  } catch (err) {
    if (err.status !== 401 || !state.user) throw err;
    if (state.authMode === 'jwt') { // an issued token cannot be renewed here
      logout();
      el.userIdError.textContent = 'Sua sessão expirou: informe um novo token de acesso.';
      throw err;
    }
    const user = state.user;
    await authenticate(user);
    if (state.user !== user) throw err;
    return request(path, options);
  }
}

const listQuestions = (token) => {
  const q = new URLSearchParams({ user_id: state.user, limit: String(PAGE_SIZE) });
  if (token) q.set('next_token', token);
  return api(`/questions?${q}`);
};
const getQuestion = (id) => api(`/questions/${encodeURIComponent(id)}`);
const postQuestion = (question, conversationId) => api('/questions', {
  method: 'POST',
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify(conversationId
    ? { user_id: state.user, question, conversation_id: conversationId }
    : { user_id: state.user, question }),
});
const postFeedback = (id, rating, comment) => api(`/questions/${encodeURIComponent(id)}/feedback`, {
  method: 'POST',
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify(comment ? { user_id: state.user, rating, comment } : { user_id: state.user, rating }),
});
const listConversations = (token) => {
  const q = new URLSearchParams({ user_id: state.user, limit: String(PAGE_SIZE) });
  if (token) q.set('next_token', token);
  return api(`/conversations?${q}`);
};
const getConversation = (id) => api(`/conversations/${encodeURIComponent(id)}?limit=100`);

// ---------------------------------------------------------------- history model

// Merges a (possibly partial) record into the model, never moving a question
// backwards (a stale list response must not undo a pushed "completed").
// Returns the previous status, or undefined when the question was new.
function upsert(rec) {
  if (!rec || !rec.question_id) return undefined;
  const cur = state.items.get(rec.question_id);
  if (cur) {
    if (rec.user_id && rec.user_id !== state.user) return cur.status;
    const older = rec.status && (STATUS_RANK[rec.status] ?? 0) < (STATUS_RANK[cur.status] ?? 0);
    const merged = { ...cur };
    for (const [k, v] of Object.entries(rec)) {
      if (v === undefined) continue;
      if (older && (k === 'status' || k === 'answer' || k === 'sources' || k === 'error_message' || k === 'updated_at')) continue;
      if (v === null && cur[k] !== null && cur[k] !== undefined && k !== 'error_message') continue;
      merged[k] = v;
    }
    state.items.set(rec.question_id, merged);
    renderItem(merged);
    return cur.status;
  }
  const item = { sources: [], ...rec };
  if (!item.created_at) item.created_at = item.updated_at || new Date().toISOString();
  state.items.set(item.question_id, item);
  renderItem(item);
  return undefined;
}

function sortKey(item) {
  return `${item.created_at || ''}|${item.question_id}`;
}

// ---------------------------------------------------------------- rendering

function itemId(id) { return `q-${id}`; }

function renderItem(item) {
  const id = itemId(item.question_id);
  const existing = document.getElementById(id);
  const node = buildCard(item);
  if (existing) {
    existing.replaceWith(node);
  } else {
    // newest first: insert before the first card that is older
    const key = sortKey(item);
    let before = null;
    for (const li of el.history.children) {
      const other = state.items.get(li.dataset.id);
      if (other && sortKey(other) < key) { before = li; break; }
    }
    el.history.insertBefore(node, before);
  }
  node.hidden = Boolean(state.filter) && item.conversation_id !== state.filter;
  el.historyEmpty.hidden = state.items.size > 0 || !state.loadedOnce;
}

function buildCard(item) {
  const status = STATUS_LABEL[item.status] ? item.status : 'pending';
  const titleId = `${itemId(item.question_id)}-title`;
  const followup = isFollowup(item);
  const li = h('li', { id: itemId(item.question_id), class: `q-card status-${status}${followup ? ' q-followup' : ''}`,
    dataset: { id: item.question_id, status, conversation: item.conversation_id || '' } });
  const article = h('article', { 'aria-labelledby': titleId });

  const head = h('div', { class: 'q-head' },
    h('h3', { class: 'q-text', id: titleId, text: item.question ?? '' }),
    h('span', { class: `badge badge-${status}`, role: 'status' },
      h('span', { class: 'visually-hidden', text: 'Status: ' }),
      h('span', { class: 'badge-dot', 'aria-hidden': 'true' }),
      STATUS_LABEL[status]));
  article.append(head);

  const times = h('p', { class: 'q-times' });
  if (item.created_at) times.append(h('span', {}, 'Enviada em ', h('time', { datetime: item.created_at, text: formatTime(item.created_at) })));
  if (item.processed_at && (status === 'completed' || status === 'error')) {
    times.append(h('span', {}, status === 'error' ? 'Encerrada em ' : 'Respondida em ',
      h('time', { datetime: item.processed_at, text: formatTime(item.processed_at) })));
    const dur = item.created_at ? durationText(item.created_at, item.processed_at) : '';
    if (dur) times.append(h('span', { class: 'q-duration', text: `Tempo de resposta: ${dur}` }));
  } else if (item.updated_at && item.updated_at !== item.created_at) {
    times.append(h('span', {}, 'Atualizada em ', h('time', { datetime: item.updated_at, text: formatTime(item.updated_at) })));
  }
  article.append(times);
  if (item.retrieval_query && item.retrieval_query !== item.question) {
    article.append(h('p', { class: 'q-rewrite', text: `Entendida como: ${item.retrieval_query}` }));
  }

  if ((status === 'pending' || status === 'processing') && item.draft?.text) {
    // streamed text so far (answer_delta); the completed update replaces it.
    // Its [n] are the model's passage numbers, not the final sources: plain text.
    const draft = h('div', { class: 'answer answer-draft', 'aria-busy': 'true' });
    draft.append(h('h4', { class: 'visually-hidden', text: 'Resposta (em andamento)' }));
    draft.append(renderMarkdown(item.draft.text, { idPrefix: `${itemId(item.question_id)}-draft`, sourceCount: 0 }));
    article.append(draft);
  } else if (status === 'pending' || status === 'processing') {
    article.append(h('p', { class: 'q-waiting', text: status === 'pending'
      ? 'Na fila. A resposta aparecerá aqui automaticamente.'
      : 'Buscando na base de conhecimento e preparando a resposta…' }));
  } else if (status === 'error') {
    article.append(h('p', { class: 'q-error', role: 'alert' },
      h('strong', { text: 'Não foi possível responder. ' }),
      item.error_message || 'Tente novamente mais tarde.'));
  } else {
    const sources = Array.isArray(item.sources) ? item.sources : [];
    const ctx = { idPrefix: `${itemId(item.question_id)}-src`, sourceCount: sources.length };
    const answer = h('div', { class: `answer${item.found_relevant_docs === false ? ' answer-none' : ''}` });
    answer.append(h('h4', { class: 'visually-hidden', text: 'Resposta' }));
    answer.append(renderMarkdown(item.answer ?? '', ctx));
    article.append(answer);
    article.append(buildSources(sources, ctx.idPrefix));
    article.append(buildFeedback(item));
  }
  li.append(article);
  return li;
}

// ---------------------------------------------------------------- feedback

const THUMBS = [
  { rating: 'up', label: 'Resposta útil' },
  { rating: 'down', label: 'Resposta não ajudou' },
];
// A thumb drawn inline (emoji fonts are not everywhere); down is up turned over.
const THUMB_PATH = 'M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 '
  + '7.59 7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z';
function thumbIcon(rating) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  for (const [k, v] of Object.entries({ viewBox: '0 0 24 24', width: '18', height: '18', 'aria-hidden': 'true',
    focusable: 'false', class: `thumb-icon thumb-icon-${rating}` })) svg.setAttribute(k, v);
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', THUMB_PATH);
  path.setAttribute('fill', 'currentColor');
  svg.append(path);
  return svg;
}

// Thumbs up/down under a completed answer (toggle buttons with aria-pressed);
// after a thumbs-down, an optional comment. A new rating replaces the old.
function buildFeedback(item) {
  const fb = item.feedback && typeof item.feedback === 'object' ? item.feedback : null;
  const rating = fb ? fb.rating : null;
  const base = itemId(item.question_id);
  const group = h('div', { class: 'feedback', role: 'group', 'aria-labelledby': `${base}-fb-label` },
    h('span', { class: 'feedback-label', id: `${base}-fb-label`, text: 'Esta resposta ajudou?' }));
  for (const t of THUMBS) {
    const btn = h('button', {
      type: 'button', class: `thumb thumb-${t.rating}`, title: t.label, 'aria-label': t.label,
      'aria-pressed': String(rating === t.rating), dataset: { rating: t.rating },
    }, thumbIcon(t.rating));
    btn.addEventListener('click', () => sendFeedback(item.question_id, t.rating, null, btn));
    group.append(btn);
  }
  group.append(h('span', { class: 'feedback-status', role: 'status', id: `${base}-fb-status`,
    text: rating ? 'Obrigado pela avaliação.' : '' }));
  const wrap = h('div', { class: 'feedback-wrap' }, group);
  if (rating === 'down' && fb.comment) {
    wrap.append(h('p', { class: 'feedback-comment-text muted' }, 'Seu comentário: ', fb.comment));
  } else if (rating === 'down') {
    wrap.append(buildCommentForm(item.question_id, base));
  }
  return wrap;
}

function buildCommentForm(id, base) {
  const box = h('textarea', { id: `${base}-fb-comment`, class: 'feedback-comment', rows: '2', maxlength: '1000' });
  const form = h('form', { class: 'feedback-form' },
    h('label', { for: `${base}-fb-comment`, text: 'O que faltou na resposta? (opcional)' }),
    box,
    h('button', { type: 'submit', class: 'btn btn-secondary btn-small feedback-send', text: 'Enviar comentário' }));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = box.value.trim();
    if (text) sendFeedback(id, 'down', text, form.querySelector('button'));
  });
  return form;
}

async function sendFeedback(id, rating, comment, button) {
  if (button) button.disabled = true;
  try {
    const data = await postFeedback(id, rating, comment);
    upsert({ question_id: id, feedback: data.feedback });
    // the card was rebuilt: keep the keyboard where it was
    const sel = comment ? '.feedback-wrap' : `.thumb-${rating}`;
    const again = document.querySelector(`#${itemId(id)} ${sel}`);
    if (again) { if (comment) again.setAttribute('tabindex', '-1'); again.focus(); }
  } catch (err) {
    if (button && button.isConnected) button.disabled = false;
    const status = document.getElementById(`${itemId(id)}-fb-status`);
    const text = `Não foi possível registrar a avaliação: ${errorText(err)}`;
    if (status) status.textContent = text; else notify(text, 'error');
  }
}

// A question after the first of its conversation (it is shown indented).
function isFollowup(item) {
  if (!item.conversation_id) return false;
  for (const other of state.items.values()) {
    if (other.conversation_id === item.conversation_id && sortKey(other) < sortKey(item)) return true;
  }
  return false;
}

function buildSources(sources, idPrefix) {
  if (!sources.length) {
    return h('p', { class: 'sources-none muted', text: 'Nenhuma fonte relevante encontrada na base de conhecimento.' });
  }
  const headId = `${idPrefix}-head`;
  const section = h('section', { class: 'sources', 'aria-labelledby': headId },
    h('h4', { id: headId, class: 'sources-title', text: `Fontes (${sources.length})` }));
  const ol = h('ol', { class: 'sources-list' });
  sources.forEach((s, i) => {
    const title = s.title || s.doc_id || 'Documento';
    ol.append(h('li', { id: `${idPrefix}-${i + 1}`, class: 'source', tabindex: '-1' },
      h('div', { class: 'source-head' },
        h('span', { class: 'source-num', 'aria-hidden': 'true', text: String(i + 1) }),
        h('div', { class: 'source-meta' },
          h('span', { class: 'source-title', text: title }),
          s.section ? h('span', { class: 'source-section', text: s.section }) : null)),
      s.snippet ? h('blockquote', { class: 'source-snippet', text: cleanSnippet(s.snippet) }) : null));
  });
  section.append(ol);
  return section;
}

// Snippets are raw excerpts of the documents: drop list markers and ** so
// they read as plain quotations.
function cleanSnippet(text) {
  return String(text).replace(/^\s*(?:[-*•]|\d{1,3}[.)])\s+/gm, '').replace(/\*\*/g, '').trim();
}

function updateLoadMore() {
  el.loadMore.hidden = !state.nextToken;
}

// ---------------------------------------------------------------- history loading

let loading = false;
let refreshQueued = false;

async function loadHistory({ more = false } = {}) {
  if (!state.user) return;
  if (loading) {
    // a refresh asked for during a load (e.g. on reconnect) runs right after it
    if (!more) refreshQueued = true;
    return;
  }
  loading = true;
  const user = state.user;
  el.history.setAttribute('aria-busy', 'true');
  el.loadMore.disabled = true;
  el.historyError.textContent = '';
  try {
    const data = await listQuestions(more ? state.nextToken : null);
    if (state.user !== user) return; // logged out meanwhile
    for (const q of data.items || []) {
      const prev = upsert(q);
      // an answer that arrived while the socket was down still gets announced
      if (prev === 'pending' || prev === 'processing') announceTransition(prev, state.items.get(q.question_id));
    }
    // A refresh of the first page keeps the cursor of pages already loaded.
    if (more || !state.loadedOnce) state.nextToken = data.next_token || null;
    state.loadedOnce = true;
    el.historyEmpty.hidden = state.items.size > 0;
    updateLoadMore();
  } catch (err) {
    if (state.user !== user) return;
    // a failed load is not an empty history: only one of the two is shown
    el.historyEmpty.hidden = true;
    el.historyError.textContent = `Não foi possível carregar o histórico: ${errorText(err)}.`;
  } finally {
    loading = false;
    el.history.setAttribute('aria-busy', 'false');
    el.loadMore.disabled = false;
  }
  if (refreshQueued && state.user === user) {
    refreshQueued = false;
    loadHistory();
  }
}

// ---------------------------------------------------------------- conversations

function updateConversationBar() {
  const cur = state.conversations.find((c) => c.conversation_id === state.conversationId);
  el.convStatus.textContent = state.conversationId
    ? `Continuando a conversa: ${shorten(cur ? cur.title : firstQuestionOf(state.conversationId), 60)}`
    : 'Nova conversa: a próxima pergunta começa uma conversa.';
  el.newConv.disabled = !state.conversationId;
  el.showAll.hidden = !state.filter;
  for (const b of el.convList.querySelectorAll('.conv-item')) {
    b.setAttribute('aria-current', b.dataset.id === state.conversationId ? 'true' : 'false');
  }
}

function firstQuestionOf(conversationId) {
  let first = null;
  for (const it of state.items.values()) {
    if (it.conversation_id === conversationId && (!first || sortKey(it) < sortKey(first))) first = it;
  }
  return first ? first.question : '';
}

function applyFilter() {
  for (const li of el.history.children) {
    const it = state.items.get(li.dataset.id);
    li.hidden = Boolean(state.filter) && (!it || it.conversation_id !== state.filter);
  }
  updateConversationBar();
}

function renderConversations() {
  el.convList.replaceChildren(...state.conversations.map((c) => h('li', {},
    h('button', { type: 'button', class: 'conv-item', dataset: { id: c.conversation_id },
      'aria-current': c.conversation_id === state.conversationId ? 'true' : 'false' },
      h('span', { class: 'conv-title', text: c.title || 'Conversa' }),
      h('span', { class: 'conv-meta', text: `${c.question_count} pergunta${c.question_count === 1 ? '' : 's'} · ${formatTime(c.last_activity_at)}` })))));
  el.convMore.hidden = !state.convNext;
  updateConversationBar();
}

async function loadConversations({ more = false } = {}) {
  if (!state.user) return;
  const user = state.user;
  el.convError.textContent = '';
  try {
    const data = await listConversations(more ? state.convNext : null);
    if (state.user !== user) return;
    const items = data.items || [];
    if (more) {
      const seen = new Set(state.conversations.map((c) => c.conversation_id));
      state.conversations.push(...items.filter((c) => !seen.has(c.conversation_id)));
    } else {
      state.conversations = items;
    }
    state.convNext = data.next_token || null;
    renderConversations();
  } catch (err) {
    if (state.user !== user) return;
    el.convError.textContent = err.status === 501
      ? 'Este servidor não guarda conversas.'
      : `Não foi possível carregar as conversas: ${errorText(err)}.`;
  }
}

// Opens a conversation: new questions continue it and the history shows only it.
async function openConversation(id) {
  state.conversationId = id;
  state.filter = id;
  applyFilter();
  try {
    const data = await getConversation(id);
    for (const q of data.items || []) upsert(q);
    applyFilter();
  } catch (err) {
    el.convError.textContent = `Não foi possível abrir a conversa: ${errorText(err)}.`;
  }
  el.question.focus();
}

function newConversation() {
  state.conversationId = null;
  state.filter = null;
  applyFilter();
  el.question.focus();
}

// ---------------------------------------------------------------- notifications

function notify(message, kind = 'info') {
  const toast = h('div', { class: `toast toast-${kind}` },
    h('span', { class: 'toast-text', text: message }),
    h('button', { type: 'button', class: 'toast-close', 'aria-label': 'Fechar notificação', text: '×' }));
  const close = () => toast.remove();
  toast.querySelector('button').addEventListener('click', close);
  el.toasts.append(toast);
  setTimeout(close, 8000);
  // bounded: the region sits between the form and the history (never over an
  // answer); the oldest notification gives way to a new one
  while (el.toasts.children.length > TOAST_MAX) el.toasts.firstElementChild.remove();
}

function shorten(text, n = 80) {
  const t = String(text || '').replace(/\s+/g, ' ').trim();
  return t.length > n ? `${t.slice(0, n - 1)}…` : t;
}

function announceTransition(prevStatus, item) {
  if (!item || prevStatus === item.status) return;
  if (item.status === 'completed') notify(`Resposta pronta: “${shorten(item.question)}”`, 'success');
  else if (item.status === 'error') notify(`Não foi possível responder: “${shorten(item.question)}”`, 'error');
  else return;
  const card = document.getElementById(itemId(item.question_id));
  if (card) card.classList.add('flash');
}

// ---------------------------------------------------------------- WebSocket

function setConn(stateName, text) {
  el.conn.dataset.state = stateName;
  el.connText.textContent = text;
  document.documentElement.dataset.ws = stateName;
}

async function connect() {
  clearTimeout(state.wsTimer);
  if (!state.user || state.ws || state.wsConnecting) return;
  const user = state.user;
  setConn('connecting', state.everRegistered ? 'Reconectando…' : 'Conectando…');
  if (state.wsAttempt > 0) {
    // the last socket never registered: the token may have expired or the
    // server may have restarted with a new secret
    state.wsConnecting = true;
    try { await authenticate(user); } catch { /* the socket attempt will fail and back off */ }
    state.wsConnecting = false;
    if (state.user !== user || state.ws) return;
  }
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const query = state.token
    ? `access_token=${encodeURIComponent(state.token)}`
    : `user_id=${encodeURIComponent(user)}`;
  const url = `${proto}//${location.host}/ws?${query}`;
  let ws;
  try {
    ws = new WebSocket(url);
  } catch {
    scheduleReconnect();
    return;
  }
  state.ws = ws;
  state.lastMessageAt = Date.now();
  ws.addEventListener('message', (ev) => {
    if (state.ws !== ws) return;
    state.lastMessageAt = Date.now();
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    onSocketMessage(msg);
  });
  ws.addEventListener('close', () => {
    if (state.ws !== ws) return;
    state.ws = null;
    stopPing();
    if (state.user) scheduleReconnect();
  });
  ws.addEventListener('open', () => {
    // Servers that did not register from the query expect a register action.
    if (state.ws !== ws) return;
    setTimeout(() => {
      if (state.ws === ws && ws.readyState === WebSocket.OPEN && el.conn.dataset.state !== 'connected') {
        ws.send(JSON.stringify(state.token
          ? { action: 'register', token: state.token }
          : { action: 'register', user_id: user }));
      }
    }, 1500);
  });
  ws.addEventListener('error', () => { /* a close event follows */ });
}

function onSocketMessage(msg) {
  if (msg.type === 'registered') {
    state.wsAttempt = 0;
    setConn('connected', 'Conectado');
    startPing();
    const reconnected = state.everRegistered;
    state.everRegistered = true;
    // Re-read the history after every (re)registration so that updates
    // pushed while the socket was down are not missed.
    loadHistory();
    if (reconnected) notify('Conexão restabelecida.', 'info');
  } else if (msg.type === 'error') {
    // e.g. registration refused: drop this socket and try again with a fresh token
    if (el.conn.dataset.state !== 'connected') state.ws?.close();
  } else if (msg.type === 'answer_delta') {
    onAnswerDelta(msg);
  } else if (msg.type === 'question_update') {
    if (msg.user_id && msg.user_id !== state.user) return;
    const known = state.items.has(msg.question_id);
    const { type, ...rec } = msg;
    const prev = upsert(rec);
    announceTransition(known ? prev : 'unknown', state.items.get(msg.question_id));
    if (!known) {
      // asked from another tab or device: fetch the full record (created_at...)
      getQuestion(msg.question_id).then(upsert).catch(() => {});
    }
  }
}

// Streamed answer text, best-effort: appended in seq order while the question
// is being answered; a new attempt (a retried answer) starts the text over; the
// completed update replaces it (buildCard shows a draft only before that).
function onAnswerDelta(msg) {
  if (msg.user_id && msg.user_id !== state.user) return;
  const item = state.items.get(msg.question_id);
  if (!item || (item.status !== 'pending' && item.status !== 'processing')) return;
  const attempt = Number(msg.attempt) || 0;
  const seq = Number(msg.seq) || 0;
  let d = item.draft;
  if (d && attempt < d.attempt) return; // a late message of an abandoned attempt
  if (!d || attempt > d.attempt) d = { attempt, seq: 0, text: '' };
  if (seq <= d.seq) return; // already shown
  const next = { ...item, draft: { attempt, seq, text: d.text + String(msg.text ?? '') } };
  state.items.set(msg.question_id, next);
  renderItem(next);
}

function scheduleReconnect() {
  clearTimeout(state.wsTimer);
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** state.wsAttempt);
  const delay = Math.round(base / 2 + Math.random() * (base / 2)); // "equal jitter"
  state.wsAttempt = Math.min(state.wsAttempt + 1, 10);
  const secs = Math.max(1, Math.round(delay / 1000));
  setConn('reconnecting', `Sem conexão — tentando em ${secs} s`);
  state.wsTimer = setTimeout(connect, delay);
}

function startPing() {
  stopPing();
  state.pingTimer = setInterval(() => {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - state.lastMessageAt > SILENCE_LIMIT_MS) { ws.close(); return; }
    try { ws.send(JSON.stringify({ action: 'ping' })); } catch { /* close follows */ }
  }, PING_EVERY_MS);
}

function stopPing() { clearInterval(state.pingTimer); state.pingTimer = null; }

function disconnect() {
  clearTimeout(state.wsTimer);
  stopPing();
  const ws = state.ws;
  state.ws = null;
  if (ws) ws.close(1000, 'logout');
  setConn('offline', 'Desconectado');
}

// ---------------------------------------------------------------- session

function showLogin() {
  el.appView.hidden = true;
  el.session.hidden = true;
  el.loginView.hidden = false;
  el.userId.focus();
}

async function login(user) {
  el.userIdError.textContent = '';
  try {
    await authenticate(user);
  } catch (err) {
    el.userIdError.textContent = `Não foi possível entrar: ${errorText(err)}.`;
    showLogin();
    return false;
  }
  state.user = user;
  state.items.clear();
  state.conversationId = null;
  state.conversations = [];
  state.convNext = null;
  state.filter = null;
  el.convList.replaceChildren();
  updateConversationBar();
  state.nextToken = null;
  state.loadedOnce = false;
  state.wsAttempt = 0;
  state.everRegistered = false;
  el.history.replaceChildren();
  el.historyEmpty.hidden = true;
  updateLoadMore();
  el.userName.textContent = user;
  el.loginView.hidden = true;
  el.session.hidden = false;
  el.appView.hidden = false;
  loadHistory();
  loadConversations();
  connect();
  return true;
}

function logout() {
  disconnect();
  state.user = null;
  state.token = null;
  try { localStorage.removeItem(USER_KEY); } catch { /* storage disabled */ }
  try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* storage disabled */ }
  el.accessToken.value = '';
  state.items.clear();
  state.conversationId = null;
  state.conversations = [];
  state.filter = null;
  el.convList.replaceChildren();
  el.history.replaceChildren();
  el.toasts.replaceChildren();
  el.question.value = '';
  updateCount();
  showLogin();
}

// ---------------------------------------------------------------- forms

function updateCount() {
  const n = el.question.value.length;
  el.questionCount.textContent = `${n}/${QUESTION_MAX}`;
  el.questionCount.classList.toggle('over', n > QUESTION_MAX);
}

el.loginForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const user = el.userId.value.trim();
  if (!USER_RE.test(user)) {
    el.userIdError.textContent = 'Identificador inválido: use de 1 a 128 letras, números ou . _ @ : -';
    el.userId.setAttribute('aria-invalid', 'true');
    el.userId.focus();
    return;
  }
  el.userIdError.textContent = '';
  el.userId.removeAttribute('aria-invalid');
  if (state.authMode === 'jwt') {
    const token = el.accessToken.value.trim();
    state.token = token || null;
    try { if (token) sessionStorage.setItem(TOKEN_KEY, token); } catch { /* storage disabled */ }
  }
  const button = el.loginForm.querySelector('button[type="submit"]');
  button.disabled = true;
  try {
    if (!(await login(user))) return;
  } finally {
    button.disabled = false;
  }
  try { localStorage.setItem(USER_KEY, user); } catch { /* storage disabled */ }
  el.question.focus();
});

el.askForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const text = el.question.value.trim();
  if (!text) {
    el.questionError.textContent = 'Escreva uma pergunta antes de enviar.';
    el.question.setAttribute('aria-invalid', 'true');
    el.question.focus();
    return;
  }
  if (text.length > QUESTION_MAX) {
    el.questionError.textContent = `A pergunta pode ter no máximo ${QUESTION_MAX} caracteres.`;
    el.question.setAttribute('aria-invalid', 'true');
    return;
  }
  el.questionError.textContent = '';
  el.question.removeAttribute('aria-invalid');
  el.askButton.disabled = true;
  el.askButton.textContent = 'Enviando…';
  try {
    let data;
    try {
      data = await postQuestion(text, state.conversationId);
    } catch (err) {
      if (err.status !== 404 || !state.conversationId) throw err;
      newConversation(); // the conversation is gone (another store, another user): start a new one
      data = await postQuestion(text, null);
    }
    const now = new Date().toISOString();
    const prev = upsert({ user_id: state.user, question_id: data.question_id, question: text, status: data.status || 'pending', created_at: now, updated_at: now, conversation_id: data.conversation_id });
    if (data.conversation_id) {
      state.conversationId = data.conversation_id;
      if (state.filter) state.filter = data.conversation_id;
      loadConversations();
    }
    el.question.value = '';
    updateCount();
    // The push may have raced ahead of the 202: read the stored record.
    getQuestion(data.question_id).then((q) => {
      const before = state.items.get(q.question_id)?.status ?? prev;
      upsert(q);
      announceTransition(before, state.items.get(q.question_id));
    }).catch(() => {});
  } catch (err) {
    el.questionError.textContent = `Não foi possível enviar a pergunta: ${errorText(err)}.`;
  } finally {
    el.askButton.disabled = false;
    el.askButton.textContent = 'Perguntar';
  }
});

el.question.addEventListener('input', () => {
  updateCount();
  // a validation message about the text goes away as soon as it is edited
  if (el.question.getAttribute('aria-invalid') === 'true' || el.questionError.textContent) {
    el.questionError.textContent = '';
    el.question.removeAttribute('aria-invalid');
  }
});
el.question.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
    ev.preventDefault();
    el.askForm.requestSubmit();
  }
});
el.loadMore.addEventListener('click', () => loadHistory({ more: true }));
el.newConv.addEventListener('click', newConversation);
el.showAll.addEventListener('click', () => { state.filter = null; applyFilter(); });
el.convMore.addEventListener('click', () => loadConversations({ more: true }));
el.convList.addEventListener('click', (ev) => {
  const b = ev.target.closest('.conv-item');
  if (b) openConversation(b.dataset.id);
});
el.refresh.addEventListener('click', () => loadHistory());
el.logout.addEventListener('click', logout);
el.history.addEventListener('animationend', (ev) => ev.target.classList?.remove('flash'));

// Reconnect at once when the network comes back instead of waiting out the backoff.
window.addEventListener('online', () => {
  if (state.user && !state.ws) { state.wsAttempt = 0; connect(); }
});

// ---------------------------------------------------------------- start

async function start() {
  try {
    const health = await request('/healthz', { auth: false });
    if (health && ['dev', 'jwt', 'none'].includes(health.auth)) state.authMode = health.auth;
  } catch { /* keep the default; login reports what fails */ }
  el.tokenField.hidden = state.authMode !== 'jwt';
  let saved = null;
  try { saved = localStorage.getItem(USER_KEY); } catch { /* storage disabled */ }
  if (saved && USER_RE.test(saved)) {
    el.userId.value = saved;
    login(saved);
  } else {
    showLogin();
  }
}

start();
