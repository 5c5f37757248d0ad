// The web UI against a server in --auth jwt mode (tokens issued elsewhere):
// the login form asks for the token, refuses a token of another user, and
// with the right token the user asks and sees the completed answer live.
//
//   node tests/browser/jwt.test.mjs <base-url> <user> <token-of-user> <token-of-other-user>
//
// Exits 0 when every check passes; otherwise prints what failed and exits 1.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, user, token, otherToken] = process.argv.slice(2);
if (!base || !user || !token || !otherToken) {
  console.error('usage: node jwt.test.mjs <base-url> <user> <token> <other-token>');
  process.exit(2);
}
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const QUESTION = 'Qual o limite de garantia do FGC?';
const profile = mkdtempSync(join(tmpdir(), 'toro-jwt-profile-'));
let context = null;
const fail = async (msg) => {
  console.error(`[jwt] FAIL: ${msg}`);
  try { await context?.close(); } catch { /* ignore */ }
  rmSync(profile, { recursive: true, force: true });
  process.exit(1);
};
const watchdog = setTimeout(() => fail('overall timeout of 120 s'), 120000);

try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, timeout: 60000, locale: 'pt-BR',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  context.setDefaultTimeout(20000);
  const page = context.pages()[0] || await context.newPage();
  await page.goto(base + '/');
  await page.locator('#access-token').waitFor({ state: 'visible' });
  // another user's token is refused before any request
  await page.fill('#user-id', user);
  await page.fill('#access-token', otherToken);
  await page.click('#login-form button[type="submit"]');
  await page.locator('#user-id-error', { hasText: 'não pertence' }).waitFor();
  // the right token logs in
  await page.fill('#access-token', token);
  await page.click('#login-form button[type="submit"]');
  await page.locator('#user-name', { hasText: user }).waitFor();
  await page.fill('#question', QUESTION);
  await page.click('#ask-button');
  const done = page.locator('#history > li[data-status="completed"]',
    { has: page.getByRole('heading', { name: QUESTION, exact: true }) });
  await done.waitFor();
  if (await done.locator('.sources-list > li').count() < 1) await fail('completed answer without sources');
  // a reload keeps the session (token in this tab's sessionStorage)
  await page.reload();
  await page.locator('#user-name', { hasText: user }).waitFor();
  await done.waitFor();
  console.log('[jwt] OK');
  clearTimeout(watchdog);
  await context.close();
  rmSync(profile, { recursive: true, force: true });
} catch (err) {
  await fail(err.message);
}
