// The web UI with streamed answers, in headless Chromium against a `toro serve`
// whose provider streams slowly (tests/e2e/test_streaming.py starts both).
//
//   node tests/browser/stream.test.mjs <base-url> <question> <final-answer>
//
// Checks: answer_delta text shows up in the card and grows while the question
// is processing (the "completed" push is held back meanwhile); a delta of a
// newer attempt starts the text over and a repeated seq is ignored; when the
// held "completed" arrives the draft is gone and the card shows the final
// answer with its sources. Exits 0 when every check passes, 1 otherwise.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [baseArg, QUESTION, FINAL] = process.argv.slice(2);
if (!baseArg || !QUESTION || !FINAL) {
  console.error('usage: node stream.test.mjs <base-url> <question> <final-answer>');
  process.exit(2);
}
const BASE = baseArg.replace(/\/+$/, '');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const profile = mkdtempSync(join(tmpdir(), 'toro-stream-profile-'));
const user = `st-${Date.now().toString(36)}`;
let context = null;
let step = 'start';
const log = (msg) => console.log(`[stream] ${msg}`);
function check(cond, msg) { if (!cond) throw new Error(msg); }

const watchdog = setTimeout(async () => {
  console.error(`[stream] FAIL: timeout during step "${step}"`);
  try { await context?.close(); } catch { /* ignore */ }
  process.exit(1);
}, 120000);

async function main() {
  step = 'launch chromium';
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, timeout: 60000, locale: 'pt-BR',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-quic'],
  });
  context.setDefaultTimeout(20000);
  const page = context.pages()[0] || await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));

  // every socket goes through this route: "completed" is held back until released,
  // and the test can push messages of its own to the page
  const held = [];
  const sockets = [];
  let hold = true;
  await page.routeWebSocket(/\/ws(\?|$)/, (ws) => {
    const server = ws.connectToServer();
    server.onMessage((m) => {
      if (hold && typeof m === 'string' && m.includes('"status":"completed"')) held.push([ws, m]);
      else ws.send(m);
    });
    sockets.push(ws);
  });

  step = 'log in';
  await page.goto(`${BASE}/`, { waitUntil: 'domcontentloaded' });
  await page.getByLabel('Identificador do usuário').fill(user);
  await page.getByRole('button', { name: 'Entrar' }).click();
  await page.waitForSelector('html[data-ws="connected"]');

  step = 'ask and watch the draft grow';
  await page.getByLabel('Sua pergunta sobre investimentos').fill(QUESTION);
  await page.getByRole('button', { name: 'Perguntar' }).click();
  const card = page.locator('#history > li', { has: page.getByRole('heading', { name: QUESTION, exact: true }) });
  const draft = card.locator('.answer-draft');
  await draft.waitFor();
  const first = (await draft.innerText()).trim();
  check(first.length > 0 && FINAL.startsWith(first.replace(/^Resposta \(em andamento\)\s*/, '').slice(0, 10)),
    `first draft text ${JSON.stringify(first)} is not the start of the answer`);
  const tail = FINAL.split(' ').slice(-2).join(' ');
  await page.waitForFunction(([sel, t]) => document.querySelector(sel)?.innerText.includes(t),
    [`#history > li[data-id="${await card.getAttribute('data-id')}"] .answer-draft`, tail], { timeout: 30000 });
  const full = (await draft.innerText()).trim();
  check(full.length > first.length, `draft did not grow: ${JSON.stringify(first)} -> ${JSON.stringify(full)}`);
  check(await card.getAttribute('data-status') !== 'completed', 'card completed while "completed" was held');
  log(`draft grew from ${first.length} to ${full.length} characters`);

  step = 'a newer attempt starts over; a repeated seq is ignored';
  const qid = await card.getAttribute('data-id');
  const push = (obj) => { for (const ws of sockets) ws.send(JSON.stringify(obj)); };
  push({ type: 'answer_delta', question_id: qid, user_id: user, attempt: 50, seq: 1, text: 'Nova tentativa' });
  await page.waitForFunction((id) => {
    const d = document.querySelector(`#history > li[data-id="${id}"] .answer-draft`);
    return d && d.innerText.includes('Nova tentativa') && !d.innerText.includes('CDB');
  }, qid);
  push({ type: 'answer_delta', question_id: qid, user_id: user, attempt: 50, seq: 1, text: ' REPETIDA' });
  push({ type: 'answer_delta', question_id: qid, user_id: user, attempt: 3, seq: 9, text: ' VELHA' });
  push({ type: 'answer_delta', question_id: qid, user_id: user, attempt: 50, seq: 2, text: ' segue' });
  await page.waitForFunction((id) => document.querySelector(`#history > li[data-id="${id}"] .answer-draft`)
    ?.innerText.includes('Nova tentativa segue'), qid);
  const d2 = await draft.innerText();
  check(!d2.includes('REPETIDA') && !d2.includes('VELHA'), `stale deltas shown: ${JSON.stringify(d2)}`);

  step = 'completed replaces the draft';
  for (let i = 0; i < 100 && held.length === 0; i++) await page.waitForTimeout(100);
  check(held.length >= 1, 'no "completed" push was held');
  hold = false;
  for (const [ws, m] of held.splice(0)) ws.send(m);
  await page.locator(`#history > li[data-id="${qid}"][data-status="completed"]`).waitFor();
  check(await card.locator('.answer-draft').count() === 0, 'draft still shown after completed');
  const answer = (await card.locator('.answer').innerText()).replace(/\s+/g, ' ').trim();
  check(answer.includes(FINAL.slice(0, 40)), `final answer not shown: ${JSON.stringify(answer)}`);
  check(await card.locator('.sources-list > li').count() >= 1, 'no sources after completed');
  push({ type: 'answer_delta', question_id: qid, user_id: user, attempt: 60, seq: 1, text: 'DEPOIS' });
  await page.waitForTimeout(300);
  check(!(await card.innerText()).includes('DEPOIS'), 'a delta after completed was shown');
  check(pageErrors.length === 0, `page errors: ${pageErrors.join(' | ')}`);
  log('completed replaced the streamed draft');
}

main().then(async () => {
  clearTimeout(watchdog);
  await context?.close();
  rmSync(profile, { recursive: true, force: true });
  console.log('[stream] PASS');
  process.exit(0);
}).catch(async (e) => {
  console.error(`[stream] FAIL at step "${step}": ${e.message}`);
  try { await context?.close(); } catch { /* ignore */ }
  rmSync(profile, { recursive: true, force: true });
  process.exit(1);
});
