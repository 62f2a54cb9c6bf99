// accounts.mjs walks the accounts app (/acc/) in headless Chromium the way
// people do, each person in a browser context of their own: the first
// visitor of a fresh install signs up and becomes admin, lands on the
// workspace, invites a colleague as viewer (no mail server: the link is
// shown to the admin); the colleague opens the link, joins and sees their
// role; a page on another origin tries to sign the admin out everywhere
// (CSRF) and is refused; the admin signs in on a second device and signs
// out everywhere from the first, which ends both sessions. A third person
// signs in through the OpenID Connect provider (SSO button) and lands on
// the workspace with the role their group maps to. It prints a
// JSON report; the caller judges it.
//
//   BASE_URL        the edge, e.g. http://127.0.0.1:8080 (required)
//   EVIL_URL        a page on another origin whose form posts to
//                   BASE_URL/accounts-api/logout-all (required)
//   CHROMIUM        the browser executable (default: /usr/bin/chromium)
//   SCREENSHOT_DIR  where to keep screenshots (optional)
//   TIMEOUT_MS      how long each step may wait (default: 30000)

import {readFileSync} from 'node:fs';
import {join} from 'node:path';
import {chromium} from 'playwright-core';

function env(name, fallback) {
  const v = process.env[name];
  if (v === undefined || v === '') {
    if (fallback === undefined) {
      process.stderr.write(`accounts.mjs: ${name} is required\n`);
      process.exit(2);
    }
    return fallback;
  }
  return v;
}

const base = env('BASE_URL').replace(/\/$/, '');
const evil = env('EVIL_URL');
const executablePath = env('CHROMIUM', '/usr/bin/chromium');
const shots = env('SCREENSHOT_DIR', '');
const timeout = Number(env('TIMEOUT_MS', '30000'));
const admin = {email: 'ada@example.test', password: 'analytical engine 1843', name: 'Ada'};
const viewer = {email: 'vic@example.test', password: 'difference engine 1822', name: 'Vic'};

const watchdog = setTimeout(() => {
  process.stderr.write('accounts.mjs: watchdog expired\n');
  process.exit(3);
}, 10 * timeout + 60_000);
watchdog.unref();

const redact = (s) => [admin.password, viewer.password].reduce((acc, p) => acc.split(p).join('<password>'), String(s));
const report = {ok: false, playwright: version('playwright-core'), browser: null, steps: [],
  pageErrors: [], consoleErrors: [], failedRequests: [], badResponses: [], problems: []};
let expectBad = false;

function version(name) {
  try {
    return JSON.parse(readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url), 'utf8')).version;
  } catch {
    return 'unknown';
  }
}

async function step(name, fn) {
  const out = {name, ok: false};
  report.steps.push(out);
  try {
    Object.assign(out, await fn());
    out.ok = true;
  } catch (err) {
    out.problem = redact(err?.message ?? err);
    report.problems.push(`${name}: ${out.problem}`);
  }
  return out.ok;
}

async function shot(page, name) {
  if (shots) await page.screenshot({path: join(shots, `${name}.png`), fullPage: true}).catch(() => {});
}

async function newPage(browser) {
  const context = await browser.newContext({viewport: {width: 1200, height: 850}});
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  page.on('pageerror', (e) => report.pageErrors.push(redact(e.message)));
  page.on('console', (m) => {
    if (m.type() === 'error' && !expectBad) report.consoleErrors.push(redact(`${m.type()}: ${m.text()}`));
  });
  page.on('requestfailed', (r) => r.failure()?.errorText === 'net::ERR_ABORTED' || report.failedRequests.push(redact(`${r.method()} ${new URL(r.url()).pathname}: ${r.failure()?.errorText}`)));
  page.on('response', (r) => {
    if (r.status() >= 400 && !expectBad) report.badResponses.push(redact(`${r.request().method()} ${new URL(r.url()).pathname}: ${r.status()}`));
  });
  return page;
}

const signedIn = async (page) => (await (await page.context().request.get(base + '/accounts-api/session')).json()).signedIn;

let browser;
try {
  browser = await chromium.launch({executablePath, headless: true, timeout: 60_000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync']});
  report.browser = browser.version();
  const a = await newPage(browser);
  let inviteLink = '';

  const go = async () => {
    if (!(await step('firstRun', async () => {
      await a.goto(base + '/', {waitUntil: 'load'});
      await a.locator('#setup-link').waitFor();
      const redirected = new URL(a.url()).pathname + new URL(a.url()).search;
      await shot(a, '01-first-visit');
      await a.locator('#setup-link').click();
      await a.locator('#signup-email').fill(admin.email);
      await a.locator('#signup-name').fill(admin.name);
      await a.locator('#signup-password').fill(admin.password);
      await a.locator('#signup-password2').fill(admin.password);
      await a.locator('#signup-submit').click();
      await a.waitForURL(base + '/');
      await a.locator('#who').getByText('Sign out').waitFor();
      await shot(a, '02-workspace-as-admin');
      const cookies = await a.context().cookies();
      const c = cookies.find((x) => x.name === 'meridian_session');
      return {redirected, url: new URL(a.url()).pathname, title: await a.title(),
        cookie: c ? {httpOnly: c.httpOnly, sameSite: c.sameSite, secure: c.secure} : null};
    }))) return;

    await step('token', async () => {
      await a.goto(base + '/connections', {waitUntil: 'load'});
      await a.locator('#connections-table tr[data-name="local"]').waitFor();
      const connections = await a.locator('#connections-table tbody tr').count();
      await a.goto(base + '/tokens', {waitUntil: 'load'});
      await a.waitForFunction(() => document.querySelectorAll('#token-source option').length > 1, null, {timeout});
      await a.locator('#token-form input[name=name]').fill('stores app');
      await a.locator('#token-source').selectOption('public.*');
      await a.locator('#token-add-grant').click();
      await a.locator('#token-create').click();
      const tok = (await a.locator('#new-token').innerText()).trim();
      await a.locator('#tokens-table tbody tr').first().waitFor();
      await shot(a, '02b-tokens');
      const list = await (await a.context().request.get(base + '/api/v3/tokens')).json();
      return {connections, created: tok.split('.').length === 3, grants: list.tokens.map((t) => t.grants.map((g) => `${g.connection_name}:${g.source}`).join(' '))};
    });

    if (!(await step('invite', async () => {
      await a.goto(base + '/acc/users', {waitUntil: 'load'});
      await a.locator('#invite-email').fill(viewer.email);
      await a.locator('#invite-role').selectOption('viewer');
      await a.locator('#invite-submit').click();
      inviteLink = (await a.locator('#invite-link').innerText()).trim();
      await a.locator('#invites tbody tr').first().waitFor();
      await shot(a, '03-people-invite');
      return {link: inviteLink.replace(/token=.*/, 'token=…'), invites: await a.locator('#invites tbody tr').count()};
    }))) return;

    await step('accept', async () => {
      const b = await newPage(browser);
      await b.goto(inviteLink, {waitUntil: 'load'});
      await b.locator('#invite-info').waitFor();
      const prefilled = await b.locator('#signup-email').inputValue();
      await b.locator('#signup-name').fill(viewer.name);
      await b.locator('#signup-password').fill(viewer.password);
      await b.locator('#signup-password2').fill(viewer.password);
      await b.locator('#signup-submit').click();
      // A viewer has no data token: the workspace sends them to their account.
      await b.waitForURL((u) => u.pathname === '/acc/');
      await b.locator('#profile-role').waitFor();
      await shot(b, '04-viewer-profile');
      const role = await b.locator('#profile-role').innerText();
      const people = await b.context().request.get(base + '/workspace-api/users');
      const token = await b.context().request.post(base + '/accounts-api/session/token', {headers: {Origin: base}});
      const reuse = await b.context().request.post(base + '/accounts-api/signup', {headers: {Origin: base},
        data: {email: 'other@example.test', password: 'another password', invite: new URL(inviteLink).searchParams.get('token')}});
      await b.context().close();
      return {prefilled, role, peopleStatus: people.status(), dataTokenStatus: token.status(), reuseStatus: reuse.status()};
    });

    await step('csrf', async () => {
      expectBad = true;
      const e = await newPage(browser);
      // The admin's browser visits a hostile page on another origin.
      const page = await a.context().newPage();
      const resp = page.waitForResponse((r) => r.url().endsWith('/accounts-api/logout-all'));
      await page.goto(evil, {waitUntil: 'load'});
      await page.locator('#go').click();
      const r = await resp;
      const body = await r.text();
      await page.close();
      await e.context().close();
      expectBad = false;
      return {status: r.status(), body: body.slice(0, 200), stillSignedIn: await signedIn(a)};
    });

    await step('sso', async () => {
      const s = await newPage(browser);
      await s.goto(base + '/acc/', {waitUntil: 'load'});
      const label = await s.locator('#sso-button').innerText();
      await s.locator('#sso-button').click();
      await s.waitForURL(base + '/');
      await s.locator('#who').getByText('Sign out').waitFor();
      await shot(s, '05-sso-workspace');
      const who = await (await s.context().request.get(base + '/accounts-api/session')).json();
      await s.context().close();
      return {label, email: who.user?.email, role: who.user?.role, title: ''};
    });

    await step('signOutEverywhere', async () => {
      const c = await newPage(browser);
      await c.goto(base + '/acc/', {waitUntil: 'load'});
      await c.locator('#login-email').fill(admin.email);
      await c.locator('#login-password').fill(admin.password);
      await c.locator('#login-submit').click();
      await c.waitForURL(base + '/');
      const before = [await signedIn(a), await signedIn(c)];
      await a.goto(base + '/acc/', {waitUntil: 'load'});
      await a.locator('#signout-all').click();
      await a.locator('#login-email').waitFor();
      await shot(a, '06-signed-out');
      const after = [await signedIn(a), await signedIn(c)];
      await c.context().close();
      return {before, after};
    });
  };
  await go();
  report.ok = report.problems.length === 0;
} catch (err) {
  report.problems.push(redact(err?.message ?? err));
} finally {
  await browser?.close().catch(() => {});
}
process.stdout.write(JSON.stringify(report, null, 2) + '\n');
process.exit(report.ok ? 0 : 1);
