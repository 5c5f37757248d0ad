// Browser test of the web UI's wording and states against a `toro serve`
// started with `--rate-limit 3` (and development login):
//   - logging in and reading the history do not use the asking budget: the
//     first question is accepted;
//   - "Escreva uma pergunta antes de enviar." clears as the user types;
//   - API errors are shown in Portuguese from their machine code (no English
//     server text inside the Portuguese sentence);
//   - an empty history and a history that failed to load are distinct states;
//   - notifications never cover an answer and are bounded in number.
//
//   node tests/browser/ux.test.mjs <base-url> <artifact-dir>
//
// Exits 0 when every check passes; otherwise prints what failed, saves
// <artifact-dir>/ux-failure.png and exits 1.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [baseArg, artifactArg] = process.argv.slice(2);
if (!baseArg || !artifactArg) {
  console.error('usage: node ux.test.mjs <base-url> <artifact-dir>');
  process.exit(2);
}
const BASE = baseArg.replace(/\/+$/, '');
const ARTIFACTS = artifactArg;
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const STEP_TIMEOUT = 20000;
const TOTAL_TIMEOUT = 150000;
// English fragments of the server's `error` texts that must never reach the page
const ENGLISH = /too many|slow down|request|question must|not found|unavailable|try again|HTTP \d/i;

mkdirSync(ARTIFACTS, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), 'toro-ux-profile-'));
const user = `ux-${Date.now().toString(36)}`;

let context = null;
let step = 'start';
const log = (msg) => console.log(`[ux] ${msg}`);

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

const watchdog = setTimeout(async () => {
  console.error(`[ux] FAIL: overall timeout of ${TOTAL_TIMEOUT / 1000}s exceeded during step "${step}"`);
  try { await context?.close(); } catch { /* ignore */ }
  process.exit(1);
}, TOTAL_TIMEOUT);

const overlaps = (a, b) => a && b && a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height &&
  b.y < a.y + a.height;

async function main() {
  step = 'launch chromium';
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60000,
    viewport: { width: 1100, height: 700 },
    locale: 'pt-BR',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  context.setDefaultTimeout(STEP_TIMEOUT);
  const page = context.pages()[0] || await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));

  // every socket goes through here so the test can drop it (reconnect toasts)
  const sockets = [];
  await page.routeWebSocket(/\/ws(\?|$)/, (ws) => {
    const server = ws.connectToServer();
    server.onMessage((m) => ws.send(m));
    sockets.push(ws);
  });

  const questionBox = page.getByLabel('Sua pergunta sobre investimentos');
  const ask = page.getByRole('button', { name: 'Perguntar' });
  const qError = page.locator('#question-error');
  const empty = page.locator('#history-empty');
  const histError = page.locator('#history-error');

  // ------------------------------------------------------------ login: empty history
  step = 'log in: empty history shown alone';
  await page.goto(`${BASE}/`, { waitUntil: 'domcontentloaded' });
  await page.getByLabel('Identificador do usuário').fill(user);
  await page.getByRole('button', { name: 'Entrar' }).click();
  await page.waitForSelector('html[data-ws="connected"]');
  await empty.waitFor({ state: 'visible' });
  check((await histError.innerText()).trim() === '', `empty history also shows an error: ${await histError.innerText()}`);
  log('fresh user: "no questions yet" shown, no error');

  // ------------------------------------------------------------ validation clears on input
  step = 'validation message clears as the user types';
  await ask.click();
  await page.locator('#question-error', { hasText: 'Escreva uma pergunta antes de enviar.' }).waitFor();
  check(await questionBox.getAttribute('aria-invalid') === 'true', 'empty question not marked invalid');
  await questionBox.pressSequentially('O');
  await page.waitForFunction(() => document.getElementById('question-error').textContent === '');
  check(await questionBox.getAttribute('aria-invalid') === null, 'aria-invalid stays after typing');
  log('validation message cleared on the first key');

  // ------------------------------------------------------------ first question accepted
  step = 'with --rate-limit 3 the first question after login and history is accepted';
  const first = 'O que é o Tesouro Selic?';
  await questionBox.fill(first);
  const [posted] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/questions') && r.request().method() === 'POST'),
    ask.click(),
  ]);
  check(posted.status() === 202, `first question answered ${posted.status()}: ${await posted.text()}`);
  const card = page.locator('#history > li', { has: page.getByRole('heading', { name: first, exact: true }) });
  await page.locator('#history > li:is([data-status="completed"],[data-status="error"])',
    { has: page.getByRole('heading', { name: first, exact: true }) }).waitFor({ timeout: 30000 });
  check((await qError.innerText()).trim() === '', `an error is shown after an accepted question: ${await qError.innerText()}`);
  check(await empty.isHidden(), '"no questions yet" still shown next to a question');
  log('first question accepted (202) and answered');

  // ------------------------------------------------------------ feedback thumbs
  step = 'thumbs on a completed answer: keyboard, stored, shown, replaced';
  const done = page.locator('#history > li[data-status="completed"]',
    { has: page.getByRole('heading', { name: first, exact: true }) });
  await done.waitFor();
  const qid = await done.getAttribute('data-id');
  const thumbDown = done.getByRole('button', { name: 'Resposta não ajudou' });
  const thumbUp = done.getByRole('button', { name: 'Resposta útil' });
  check(await thumbDown.getAttribute('aria-pressed') === 'false', 'a fresh answer shows a chosen thumb');
  await thumbDown.focus();
  const [fbRes] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith(`/questions/${qid}/feedback`) && r.request().method() === 'POST'),
    page.keyboard.press('Enter'),
  ]);
  check(fbRes.status() === 200, `thumb-down answered ${fbRes.status()}: ${await fbRes.text()}`);
  await page.locator(`#q-${qid} .thumb-down[aria-pressed="true"]`).waitFor();
  check(await page.evaluate(() => document.activeElement && document.activeElement.classList.contains('thumb-down')),
    'keyboard focus lost after rating');
  // the optional comment after a thumbs-down
  await done.getByLabel('O que faltou na resposta? (opcional)').fill('faltou o rendimento');
  await done.screenshot({ path: join(ARTIFACTS, 'ux-feedback.png'), timeout: 5000 });
  const [cRes] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith(`/questions/${qid}/feedback`) && r.request().method() === 'POST'),
    done.getByRole('button', { name: 'Enviar comentário' }).click(),
  ]);
  check(cRes.status() === 200, `comment answered ${cRes.status()}`);
  await done.locator('.feedback-comment-text', { hasText: 'faltou o rendimento' }).waitFor();
  // stored on the server, read back with a token of this user
  const stored = async () => {
    const login = await fetch(`${BASE}/auth/dev-login`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ user_id: user }) }).then((r) => r.json());
    const got = await fetch(`${BASE}/questions/${qid}`, { headers: { Authorization: `Bearer ${login.data.token}` } })
      .then((r) => r.json());
    return got.data.feedback;
  };
  let fb = await stored();
  check(fb && fb.rating === 'down' && fb.comment === 'faltou o rendimento', `stored feedback: ${JSON.stringify(fb)}`);
  // a click on the other thumb replaces it; the state survives a reload of the history
  await thumbUp.click();
  await page.locator(`#q-${qid} .thumb-up[aria-pressed="true"]`).waitFor();
  check(await page.locator(`#q-${qid} .thumb-down`).getAttribute('aria-pressed') === 'false', 'both thumbs pressed');
  fb = await stored();
  check(fb && fb.rating === 'up' && fb.comment === null, `replaced feedback: ${JSON.stringify(fb)}`);
  await page.reload({ waitUntil: 'domcontentloaded' });
  await page.locator(`#q-${qid} .thumb-up[aria-pressed="true"]`).waitFor();
  await page.waitForSelector('html[data-ws="connected"]');
  log('thumbs: keyboard rating, comment, replacement stored and shown after reload');

  // ------------------------------------------------------------ rate limit in Portuguese
  step = 'a refused question is explained in Portuguese';
  let refused = null;
  for (let i = 0; i < 4 && !refused; i++) {
    await questionBox.fill(`Pergunta extra ${i}: como funciona o CDB?`);
    const [r] = await Promise.all([
      page.waitForResponse((x) => x.url().endsWith('/questions') && x.request().method() === 'POST'),
      ask.click(),
    ]);
    if (r.status() === 429) refused = await r.json();
    await page.waitForFunction(() => document.getElementById('ask-button').disabled === false);
  }
  check(refused && refused.code === 'rate_limited', `no 429 with code rate_limited: ${JSON.stringify(refused)}`);
  const rateText = (await qError.innerText()).trim();
  check(/^Não foi possível enviar a pergunta: muitas solicitações em pouco tempo/.test(rateText),
    `rate-limit message not in Portuguese: ${JSON.stringify(rateText)}`);
  check(!ENGLISH.test(rateText), `English server text in the message: ${JSON.stringify(rateText)}`);
  log(`429 shown as: ${rateText}`);

  // ------------------------------------------------------------ failed history != empty history
  step = 'a failed history load is shown as such, never with "no questions yet"';
  await page.route(/\/questions\?/, (route) => route.fulfill({
    status: 503, contentType: 'application/json',
    body: JSON.stringify({ success: false, error: 'history is unavailable right now; try again', code: 'unavailable' }),
  }));
  await page.getByRole('button', { name: 'Atualizar histórico' }).click();
  await page.locator('#history-error', { hasText: 'Não foi possível carregar o histórico' }).waitFor();
  const histText = (await histError.innerText()).trim();
  check(/indisponível/.test(histText) && !ENGLISH.test(histText), `history error not in Portuguese: ${JSON.stringify(histText)}`);
  check(await empty.isHidden(), 'failed history shows "no questions yet" too');
  await page.unroute(/\/questions\?/);
  log(`failed history shown as: ${histText}`);
  // a new user whose first load fails: only the error
  await page.route(/\/questions\?/, (route) => route.fulfill({
    status: 503, contentType: 'application/json',
    body: JSON.stringify({ success: false, error: 'history is unavailable right now; try again', code: 'unavailable' }),
  }));
  await page.getByRole('button', { name: 'Sair da conta' }).click();
  await page.getByLabel('Identificador do usuário').fill(`${user}-b`);
  await page.getByRole('button', { name: 'Entrar' }).click();
  await page.locator('#history-error', { hasText: 'Não foi possível carregar o histórico' }).waitFor();
  await page.waitForTimeout(300);
  check(await empty.isHidden(), 'first load failed: "no questions yet" shown with the error');
  await page.unroute(/\/questions\?/);
  await page.getByRole('button', { name: 'Atualizar histórico' }).click();
  await empty.waitFor({ state: 'visible' });
  check((await histError.innerText()).trim() === '', 'error stays after a successful reload');
  log('empty and failed history are distinct states');

  // ------------------------------------------------------------ toasts never cover answers
  step = 'notifications are bounded and never cover an answer';
  await page.getByRole('button', { name: 'Sair da conta' }).click();
  await page.getByLabel('Identificador do usuário').fill(user);
  await page.getByRole('button', { name: 'Entrar' }).click();
  await card.waitFor();
  await page.waitForSelector('html[data-ws="connected"]');
  for (let i = 0; i < 4; i++) {
    // each dropped socket reconnects and announces "Conexão restabelecida."
    for (const ws of sockets.splice(0)) await ws.close({ code: 1012, reason: 'test: drop' }).catch(() => {});
    await page.waitForSelector('html[data-ws="reconnecting"]');
    await page.waitForSelector('html[data-ws="connected"]', { timeout: 30000 });
  }
  const toasts = page.locator('#toasts .toast');
  const n = await toasts.count();
  check(n >= 1, 'no notification shown after reconnecting');
  check(n <= 2, `notifications are not bounded: ${n} on screen`);
  for (const width of [1100, 375]) {
    await page.setViewportSize({ width, height: 700 });
    const cards = await page.locator('#history > li').evaluateAll((ls) => ls.map((l) => l.getBoundingClientRect().toJSON()));
    const boxes = await toasts.evaluateAll((ts) => ts.map((t) => t.getBoundingClientRect().toJSON()));
    check(cards.length >= 1 && boxes.length >= 1, 'nothing to compare');
    for (const b of boxes) for (const c of cards) check(!overlaps(b, c), `a toast covers an answer at ${width}px: ${JSON.stringify([b, c])}`);
    // also while scrolled to the answers
    await card.scrollIntoViewIfNeeded();
    const cards2 = await page.locator('#history > li').evaluateAll((ls) => ls.map((l) => l.getBoundingClientRect().toJSON()));
    const boxes2 = await toasts.evaluateAll((ts) => ts.map((t) => t.getBoundingClientRect().toJSON()));
    for (const b of boxes2) for (const c of cards2) check(!overlaps(b, c), `a toast covers an answer when scrolled at ${width}px`);
  }
  log(`${n} notification(s) on screen, none over an answer (1100 and 375 px)`);
  check(pageErrors.length === 0, `uncaught page errors: ${pageErrors.join(' | ')}`);
}

let failed = false;
try {
  await main();
  console.log('[ux] PASS');
} catch (err) {
  failed = true;
  console.error(`[ux] FAIL during step "${step}": ${err && err.message ? err.message : err}`);
  try {
    const page = context?.pages()[0];
    if (page) await page.screenshot({ path: join(ARTIFACTS, 'ux-failure.png'), fullPage: true, timeout: 5000 });
  } catch { /* best effort */ }
} finally {
  try { await context?.close(); } catch { /* ignore */ }
  rmSync(profile, { recursive: true, force: true });
  clearTimeout(watchdog);
}
process.exit(failed ? 1 : 0);
