// End-to-end test of the toro web UI in headless Chromium against a running
// `toro serve`.
//
//   node tests/browser/ui.test.mjs <base-url> <artifact-dir>
//
// Exits 0 when every check passes; otherwise prints what failed and exits 1.
// Leaves <artifact-dir>/ui.png (desktop) and ui-mobile.png (375 px) behind,
// plus ui-failure.png when a check fails.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [baseArg, artifactArg] = process.argv.slice(2);
if (!baseArg || !artifactArg) {
  console.error('usage: node ui.test.mjs <base-url> <artifact-dir>');
  process.exit(2);
}
const BASE = baseArg.replace(/\/+$/, '');
const ARTIFACTS = artifactArg;
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const STEP_TIMEOUT = 20000;
const TOTAL_TIMEOUT = 180000;

mkdirSync(ARTIFACTS, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), 'toro-ui-profile-'));
const user = `ui-${Date.now().toString(36)}`;
const QUESTION = 'O que é o Tesouro Selic e como ele rende?';
const XSS_SCRIPT = "<script>window.__xss='script';alert('xss-script')</script> O que é CDB?";
const XSS_IMG = "<img src=x onerror=\"window.__xss='img';alert('xss-img')\"> Como funciona o FGC?";

let context = null;
let step = 'start';
const log = (msg) => console.log(`[ui] ${msg}`);

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

// Hard stop: whatever hangs, the browser is closed and the run fails.
const watchdog = setTimeout(async () => {
  console.error(`[ui] FAIL: overall timeout of ${TOTAL_TIMEOUT / 1000}s exceeded during step "${step}"`);
  try { await context?.close(); } catch { /* ignore */ }
  process.exit(1);
}, TOTAL_TIMEOUT);

async function main() {
  step = 'launch chromium';
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60000,
    viewport: { width: 1100, height: 900 },
    locale: 'pt-BR',
    timezoneId: 'America/Sao_Paulo',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  context.setDefaultTimeout(STEP_TIMEOUT);
  const page = context.pages()[0] || await context.newPage();

  const dialogs = [];
  const pageErrors = [];
  const consoleErrors = [];
  page.on('dialog', async (d) => { dialogs.push(`${d.type()}: ${d.message()}`); await d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });

  // Every WebSocket of the page goes through this route so the test can cut
  // the connection (and refuse reconnections) to exercise the reconnect path.
  let wsRoutes = [];
  let refuseWs = false;
  await page.routeWebSocket(/\/ws(\?|$)/, (ws) => {
    if (refuseWs) { ws.close({ code: 1011, reason: 'test: server unavailable' }); return; }
    const server = ws.connectToServer();
    server.onMessage((m) => {
      // While holdCompleted is set, "completed" pushes are held back so the
      // test can see the question in "processing" before it completes.
      if (holdCompleted && typeof m === 'string' && m.includes('"status":"completed"')) held.push([ws, m]);
      else ws.send(m);
    });
    wsRoutes.push(ws);
  });
  let holdCompleted = false;
  const held = [];

  // ------------------------------------------------------------ login
  step = 'open page and log in';
  const resp = await page.goto(`${BASE}/`, { waitUntil: 'domcontentloaded' });
  check(resp && resp.ok(), `GET / answered ${resp && resp.status()}`);
  check((resp.headers()['content-security-policy'] || '').includes("script-src 'self'"), 'GET / has no CSP header');
  await page.getByLabel('Identificador do usuário').fill(user);
  await page.getByRole('button', { name: 'Entrar' }).click();
  await page.locator('#user-name', { hasText: user }).waitFor();
  await page.waitForSelector('html[data-ws="connected"]');
  check(await page.evaluate(() => localStorage.getItem('toro.userId')) === user, 'user id not remembered in localStorage');
  log(`logged in as ${user}, WebSocket connected`);

  // ------------------------------------------------------------ ask, live update
  step = 'ask a question and see it completed without reload';
  await page.evaluate(() => {
    window.__noReload = 'still-here';
    window.__seen = [];
    // records every status a question card shows, in order
    new MutationObserver(() => {
      for (const li of document.querySelectorAll('#history > li')) {
        const last = window.__seen.filter((x) => x[0] === li.dataset.id).pop();
        if (!last || last[1] !== li.dataset.status) window.__seen.push([li.dataset.id, li.dataset.status]);
      }
    }).observe(document.getElementById('history'), { childList: true, subtree: true, attributes: true });
  });
  // The live path must do the work: hold the "completed" push and keep the
  // page from reading the finished record over REST until it is released.
  holdCompleted = true;
  await page.route(/\/questions\/[^/?]+$/, (route) => route.abort());
  await page.getByLabel('Sua pergunta sobre investimentos').fill(QUESTION);
  await page.getByRole('button', { name: 'Perguntar' }).click();
  const card = page.locator('#history > li', { has: page.getByRole('heading', { name: QUESTION, exact: true }) });
  await card.waitFor();
  await page.locator('#history > li[data-status="processing"]', { has: page.getByRole('heading', { name: QUESTION, exact: true }) }).waitFor();
  check(/processando/i.test(await card.locator('.badge').innerText()), 'status badge does not say Processando');
  for (let i = 0; i < 100 && held.length === 0; i++) await page.waitForTimeout(100);
  check(held.length === 1, `expected one held "completed" push, got ${held.length}`);
  holdCompleted = false;
  for (const [ws, m] of held.splice(0)) ws.send(m);
  await page.locator('#history > li[data-status="completed"]', { has: page.getByRole('heading', { name: QUESTION, exact: true }) }).waitFor();
  await page.unroute(/\/questions\/[^/?]+$/);
  const seen = (await page.evaluate(() => window.__seen)).map((x) => x[1]);
  check(seen.join(',').endsWith('processing,completed'), `status sequence on screen: ${seen.join(' -> ')}`);
  check(await page.evaluate(() => window.__noReload) === 'still-here', 'page reloaded while waiting for the answer');
  check(await card.locator('.badge').innerText().then((t) => /conclu/i.test(t)), 'status badge does not say Concluída');
  const answerText = (await card.locator('.answer').innerText()).trim();
  check(answerText.length > 20, `answer too short: ${JSON.stringify(answerText)}`);
  const sources = card.locator('.sources-list > li');
  const nSources = await sources.count();
  check(nSources >= 1, 'completed answer shows no sources');
  check((await sources.first().locator('.source-title').innerText()).trim().length > 0, 'source without title');
  check((await sources.first().locator('.source-snippet').innerText()).trim().length > 0, 'source without snippet');
  check(await card.locator('time').count() >= 2, 'sent/answered times are not shown');
  await page.locator('#toasts .toast', { hasText: 'Resposta pronta' }).first().waitFor();
  log(`question went ${seen.join(' -> ')} live with ${nSources} source(s); notification shown`);

  // ------------------------------------------------------------ XSS in questions
  step = 'XSS attempts in question text render as text';
  for (const q of [XSS_SCRIPT, XSS_IMG]) {
    await page.getByLabel('Sua pergunta sobre investimentos').fill(q);
    await page.getByRole('button', { name: 'Perguntar' }).click();
    await page.locator('#history > li:is([data-status="completed"],[data-status="error"])',
      { has: page.getByRole('heading', { name: q, exact: true }) }).waitFor();
  }
  await page.waitForTimeout(300);
  const assertNoInjection = async (where) => {
    check(dialogs.length === 0, `${where}: a dialog fired: ${dialogs.join(' | ')}`);
    check(await page.evaluate(() => window.__xss) === undefined, `${where}: injected script ran`);
    check(await page.locator('#history img, #toasts img').count() === 0, `${where}: an <img> element was injected`);
    const scripts = await page.evaluate(() => [...document.scripts].map((s) => s.getAttribute('src')));
    check(scripts.length === 1 && scripts[0] === 'app.js', `${where}: unexpected <script> elements: ${JSON.stringify(scripts)}`);
    check(await page.locator('#history script').count() === 0, `${where}: a <script> element was injected`);
    for (const q of [XSS_SCRIPT, XSS_IMG]) {
      check(await page.getByRole('heading', { name: q, exact: true }).isVisible(), `${where}: literal text not visible: ${q}`);
    }
  };
  await assertNoInjection('live');
  log('XSS questions rendered as literal text');

  // ------------------------------------------------------------ reload: history persists
  step = 'reload and find the history';
  await page.reload({ waitUntil: 'domcontentloaded' });
  await page.locator('#user-name', { hasText: user }).waitFor();
  const after = page.locator('#history > li[data-status="completed"]', { has: page.getByRole('heading', { name: QUESTION, exact: true }) });
  await after.waitFor();
  check(await after.locator('.sources-list > li').count() === nSources, 'sources differ after reload');
  check(await page.locator('#history > li').count() === 3, `expected 3 questions in history, got ${await page.locator('#history > li').count()}`);
  const order = await page.locator('#history .q-text').allInnerTexts();
  check(order[order.length - 1] === QUESTION, `history is not newest first: ${JSON.stringify(order)}`);
  await assertNoInjection('after reload');
  await page.waitForSelector('html[data-ws="connected"]');
  log('history survives reload, newest first');

  // ------------------------------------------------------------ reconnect and catch up
  step = 'socket drop: reconnect with backoff and refresh history';
  refuseWs = true;
  for (const ws of wsRoutes.splice(0)) await ws.close({ code: 1012, reason: 'test: drop' }).catch(() => {});
  await page.waitForSelector('html[data-ws="reconnecting"]');
  const missedQ = 'Quanto rende a poupança?';
  // Same credentials the page uses: a dev-login token, unless the server runs
  // without authentication (404).
  const auth = {};
  const login = await fetch(`${BASE}/auth/dev-login`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ user_id: user }),
  });
  if (login.ok) auth.Authorization = `Bearer ${(await login.json()).data.token}`;
  else check(login.status === 404, `POST /auth/dev-login answered ${login.status}`);
  const posted = await fetch(`${BASE}/questions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', ...auth },
    body: JSON.stringify({ user_id: user, question: missedQ }),
  });
  check(posted.status === 202, `POST /questions from the test answered ${posted.status}`);
  const qid = (await posted.json()).data.question_id;
  for (let i = 0; i < 100; i++) {
    const r = await (await fetch(`${BASE}/questions/${qid}`, { headers: auth })).json();
    if (r.data && (r.data.status === 'completed' || r.data.status === 'error')) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  check(await page.locator(`#q-${qid}`).count() === 0, 'question appeared while the socket was down (test is not testing anything)');
  refuseWs = false;
  await page.locator(`#q-${qid}:is([data-status="completed"],[data-status="error"])`).waitFor({ timeout: 30000 });
  await page.waitForSelector('html[data-ws="connected"]');
  log('reconnected and caught up on the answer missed while disconnected');

  // ------------------------------------------------------------ answer markup is inert too
  step = 'hostile answer and source text render as text';
  await page.route(/\/questions\?/, async (route) => {
    const res = await route.fetch();
    const body = await res.json();
    const first = body.data.items.find((q) => q.status === 'completed' && q.sources.length);
    if (first) {
      first.answer = '**<img src=x onerror="window.__xss=\'answer\';alert(1)">** texto\n\n- item <script>alert(2)</script>\n- **negrito** [1]';
      first.sources[0].title = '<img src=y onerror="alert(3)">';
      first.sources[0].snippet = '<script>alert(4)</script>';
    }
    await route.fulfill({ response: res, json: body });
  });
  await page.reload({ waitUntil: 'domcontentloaded' });
  await page.getByText('<img src=y onerror="alert(3)">', { exact: true }).first().waitFor();
  await assertNoInjection('hostile answer');
  check(await page.locator('#history .answer strong', { hasText: 'negrito' }).count() >= 1, 'Markdown **bold** not rendered');
  check(await page.locator('#history .answer ul > li').count() >= 2, 'Markdown list not rendered');
  check(await page.locator('#history .answer a.cite').count() >= 1, 'citation [1] not linked to its source');
  await page.unroute(/\/questions\?/);
  await page.reload({ waitUntil: 'domcontentloaded' });
  await page.waitForSelector('html[data-ws="connected"]');
  await after.waitFor();
  log('hostile answer text rendered inert; Markdown subset rendered');

  // ------------------------------------------------------------ answer shape
  // Real answers from the sample knowledge base: a lead paragraph, points
  // with citations, a Markdown table as a <table>, and the no-recommendation
  // note on an advice question, all built without innerHTML (CSP checks below).
  step = 'answer shape: lead, points, table, advice note';
  const askAndWait = async (q) => {
    await page.getByLabel('Sua pergunta sobre investimentos').fill(q);
    await page.getByRole('button', { name: 'Perguntar' }).click();
    const c = page.locator('#history > li', { has: page.getByRole('heading', { name: q, exact: true }) });
    await page.locator('#history > li[data-status="completed"]', { has: page.getByRole('heading', { name: q, exact: true }) }).waitFor({ timeout: 30000 });
    return c;
  };
  const tableCard = await askAndWait('CDB paga imposto de renda? Qual a alíquota?');
  check(await tableCard.locator('.answer .answer-lead').count() === 1, 'answer has no single lead paragraph');
  check(await tableCard.locator('.answer table.md-table thead th').count() >= 2, 'answer table has no header cells');
  check(await tableCard.locator('.answer table.md-table tbody tr').count() >= 4, 'answer table rows not rendered');
  check(await tableCard.locator('.answer table.md-table td', { hasText: '22,5%' }).count() >= 1, 'table cell 22,5% not rendered');
  check((await tableCard.locator('.answer').innerText()).indexOf('|---') < 0, 'table separator shown as text');
  check(await tableCard.locator('.answer a.cite').count() >= 2, 'lead and points are not cited');
  const adviceCard = await askAndWait('Qual o preço da ação da Petrobras hoje e devo comprar?');
  const note = adviceCard.locator('.answer .answer-note[role="note"]');
  check(await note.count() === 1, 'advice answer has no note box');
  check(/não faz recomendações individuais/.test(await note.innerText()), 'note does not say toro gives no recommendation');
  check(/tempo real/.test(await note.innerText()), 'note does not mention real-time quotes');
  check(!/^>/.test((await note.innerText()).trim()), 'note shows its Markdown marker');
  await tableCard.scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(ARTIFACTS, 'ui-answer-shape.png'), fullPage: true });
  log('answer shape rendered: lead, cited points, table, advice note');

  // ------------------------------------------------------------ phone width
  step = 'phone width 375 px';
  await page.setViewportSize({ width: 375, height: 812 });
  await page.waitForTimeout(200);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `page overflows horizontally by ${overflow}px at 375 px width`);
  await page.screenshot({ path: join(ARTIFACTS, 'ui-mobile.png'), fullPage: false });

  // ------------------------------------------------------------ screenshot
  step = 'screenshot';
  await page.setViewportSize({ width: 1100, height: 900 });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.locator('#toasts .toast').evaluateAll((ts) => ts.forEach((t) => t.remove()));
  await page.getByLabel('Sua pergunta sobre investimentos').fill('Qual a diferença entre LCI e CDB?');
  await page.screenshot({ path: join(ARTIFACTS, 'ui.png'), fullPage: true });
  log(`screenshots saved in ${ARTIFACTS}`);

  // ------------------------------------------------------------ logout
  step = 'logout';
  await page.getByRole('button', { name: 'Sair da conta' }).click();
  await page.getByLabel('Identificador do usuário').waitFor();
  check(await page.evaluate(() => localStorage.getItem('toro.userId')) === null, 'logout kept the user id');
  check(await page.locator('#history > li').count() === 0, 'logout left the history on screen');

  check(pageErrors.length === 0, `uncaught page errors: ${pageErrors.join(' | ')}`);
  const cspErrors = consoleErrors.filter((t) => /Content Security Policy/i.test(t));
  check(cspErrors.length === 0, `CSP violations: ${cspErrors.join(' | ')}`);
  check(dialogs.length === 0, `dialogs fired: ${dialogs.join(' | ')}`);
}

let failed = false;
try {
  await main();
  console.log('[ui] PASS');
} catch (err) {
  failed = true;
  console.error(`[ui] FAIL during step "${step}": ${err && err.message ? err.message : err}`);
  try {
    const page = context?.pages()[0];
    if (page) await page.screenshot({ path: join(ARTIFACTS, 'ui-failure.png'), fullPage: true, timeout: 5000 });
  } catch { /* best effort */ }
} finally {
  try { await context?.close(); } catch { /* ignore */ }
  rmSync(profile, { recursive: true, force: true });
  clearTimeout(watchdog);
}
process.exit(failed ? 1 : 0);
