// Browser test of conversations in the web UI against a `toro serve` with
// development login:
//   - the first question starts a conversation; the next one continues it
//     (sent with its conversation_id) and shows the query it was read as;
//   - "Nova conversa" makes the next question start another conversation;
//   - the conversation list shows both, newest activity first, with counts;
//   - opening a conversation narrows the history to its questions and makes
//     new questions continue it; "Mostrar todas" shows every question again.
//
//   node tests/browser/conv.test.mjs <base-url> <artifact-dir>
//
// Exits 0 when every check passes; otherwise prints what failed, saves
// <artifact-dir>/conv-failure.png and exits 1.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [baseArg, artifactArg] = process.argv.slice(2);
if (!baseArg || !artifactArg) {
  console.error('usage: node conv.test.mjs <base-url> <artifact-dir>');
  process.exit(2);
}
const BASE = baseArg.replace(/\/+$/, '');
const ARTIFACTS = artifactArg;
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const TOTAL_TIMEOUT = 120000;

mkdirSync(ARTIFACTS, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), 'toro-conv-profile-'));
const user = `conv-${Date.now().toString(36)}`;
let context = null;
let page = null;
let step = 'start';
const log = (msg) => console.log(`[conv] ${msg}`);

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

const watchdog = setTimeout(async () => {
  console.error(`[conv] FAIL: overall timeout of ${TOTAL_TIMEOUT / 1000}s exceeded during step "${step}"`);
  try { await context?.close(); } catch { /* ignore */ }
  process.exit(1);
}, TOTAL_TIMEOUT);

async function askAndWait(text) {
  await page.getByLabel('Sua pergunta sobre investimentos').fill(text);
  await page.getByRole('button', { name: 'Perguntar' }).click();
  const card = page.locator('#history > li[data-status="completed"]',
    { has: page.getByRole('heading', { name: text, exact: true }) });
  await card.waitFor({ timeout: 30000 });
  return card;
}

async function main() {
  step = 'launch chromium';
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, timeout: 60000, viewport: { width: 1100, height: 800 },
    locale: 'pt-BR', args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-quic'],
  });
  context.setDefaultTimeout(20000);
  page = context.pages()[0] || await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  const posted = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && r.url().endsWith('/questions')) posted.push(JSON.parse(r.postData() || '{}'));
  });

  step = 'login';
  await page.goto(BASE + '/');
  await page.getByLabel('Identificador do usuário').fill(user);
  await page.getByRole('button', { name: 'Entrar' }).click();
  await page.locator('#user-name', { hasText: user }).waitFor();

  step = 'a first question and a follow-up';
  const first = await askAndWait('Quanto rende o CDB?');
  const cid = await first.getAttribute('data-conversation');
  check(cid && cid.length === 36, `first question has no conversation: ${cid}`);
  check(posted.length === 1 && !('conversation_id' in posted[0]), `first POST sent a conversation: ${JSON.stringify(posted)}`);
  await page.locator('#conversation-status', { hasText: 'Continuando a conversa' }).waitFor();
  const follow = await askAndWait('E a LCA?');
  check(posted[1].conversation_id === cid, `follow-up not sent in the conversation: ${JSON.stringify(posted[1])}`);
  check(await follow.getAttribute('data-conversation') === cid, 'follow-up card is in another conversation');
  check(await follow.evaluate((n) => n.classList.contains('q-followup')), 'follow-up is not marked as one');
  const rewrite = await follow.locator('.q-rewrite').innerText();
  check(/LCA/.test(rewrite) && !/CDB/.test(rewrite), `rewritten query not shown: ${rewrite}`);
  log(`follow-up sent in conversation ${cid.slice(0, 8)} and shown as "${rewrite}"`);

  step = 'new conversation';
  await page.getByRole('button', { name: 'Nova conversa' }).click();
  await page.locator('#conversation-status', { hasText: 'Nova conversa' }).waitFor();
  const other = await askAndWait('O que é o Tesouro Selic?');
  check(!('conversation_id' in posted[2]), 'a question after "Nova conversa" continued the old conversation');
  const cid2 = await other.getAttribute('data-conversation');
  check(cid2 && cid2 !== cid, 'a new conversation got the old id');
  const items = page.locator('#conversations .conv-item');
  await page.waitForFunction(() => document.querySelectorAll('#conversations .conv-item').length === 2);
  check(await items.nth(0).getAttribute('data-id') === cid2, 'conversation list is not newest activity first');
  check(/2 perguntas/.test(await items.nth(1).innerText()), `count missing: ${await items.nth(1).innerText()}`);
  check(/Quanto rende o CDB\?/.test(await items.nth(1).innerText()), 'conversation title is not its first question');
  log('"Nova conversa" starts another conversation; the list shows both with counts');

  step = 'open a conversation';
  await items.nth(1).click();
  await page.waitForFunction((c) => [...document.querySelectorAll('#history > li')]
    .every((li) => li.hidden === (li.dataset.conversation !== c)), cid);
  check(await page.locator('#history > li:not([hidden])').count() === 2, 'opened conversation does not show its 2 questions');
  await askAndWait('e quanto rende a LCI?');
  check(posted[3].conversation_id === cid, 'a question after opening a conversation did not continue it');
  await page.getByRole('button', { name: 'Mostrar todas as perguntas' }).click();
  check(await page.locator('#history > li:not([hidden])').count() === 4, 'not every question shown again');
  log('opening a conversation narrows the history and continues it; "Mostrar todas" restores');
  check(pageErrors.length === 0, `page errors: ${pageErrors.join('; ')}`);
}

main().then(async () => {
  clearTimeout(watchdog);
  await context.close();
  rmSync(profile, { recursive: true, force: true });
  log('PASS');
  process.exit(0);
}).catch(async (e) => {
  console.error(`[conv] FAIL during step "${step}": ${e.message}`);
  try { await page?.screenshot({ path: join(ARTIFACTS, 'conv-failure.png'), fullPage: true }); } catch { /* ignore */ }
  try { await context?.close(); } catch { /* ignore */ }
  process.exit(1);
});
