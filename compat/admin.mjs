// admin.mjs walks the admin console (/admin/) in headless Chromium (driven
// by playwright-core, with the system's Chromium) the way an operator
// would: signs in with the admin token, waits until the nodes table lists
// every expected node as ready, reads the edge caches, purges tags across
// the cluster, opens a subscription's dead letters and replays the first.
// It prints a JSON report on stdout; the caller judges it. Exits 1 when a
// step could not be done (2 on bad usage). internal/netcluster runs it
// against a multi-host cluster.
//
//   BASE_URL        an edge, e.g. http://10.99.1.13:8080 (required)
//   ADMIN_TOKEN     the admin API's bearer secret (required)
//   EXPECT_NODES    node names, space-separated, to wait for as ready (required)
//   PURGE_TAGS      tags to purge, space-separated (required)
//   DEAD_SUB        a subscription holding a dead letter to replay (required)
//   SESSION_COOKIE  optional: an administrator's session cookie (meridian_session);
//                   then, in a new tab without the token, the console must open
//                   on the session, list USER_EMAIL among the users, show the
//                   running batch job and cancel it, purge and show the purge
//                   in the audit log
//   USER_EMAIL      the administrator's email (with SESSION_COOKIE)
//   CHROMIUM        the browser executable (default: /usr/bin/chromium)
//   TIMEOUT_MS      how long each step may wait (default: 30000)
//   SCREENSHOT_DIR  where to keep screenshots (optional)

import {mkdtempSync, readFileSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {chromium} from 'playwright-core';

function env(name, fallback) {
  const v = process.env[name];
  if (v === undefined || v === '') {
    if (fallback === undefined) {
      process.stderr.write(`admin.mjs: ${name} is required\n`);
      process.exit(2);
    }
    return fallback;
  }
  return v;
}

const base = env('BASE_URL').replace(/\/$/, '');
const token = env('ADMIN_TOKEN');
const expectNodes = env('EXPECT_NODES').split(/\s+/).filter(Boolean);
const purgeTags = env('PURGE_TAGS');
const deadSub = env('DEAD_SUB');
const sessionCookie = env('SESSION_COOKIE', '');
const userEmail = env('USER_EMAIL', '');
const executablePath = env('CHROMIUM', '/usr/bin/chromium');
const timeout = Number(env('TIMEOUT_MS', '30000'));
const shots = env('SCREENSHOT_DIR', '');

const watchdog = setTimeout(() => {
  process.stderr.write('admin.mjs: watchdog expired\n');
  process.exit(3);
}, 8 * timeout + 60_000);
watchdog.unref();

const redact = (s) => {
  let out = String(s).split(token).join('<token>');
  if (sessionCookie) out = out.split(sessionCookie).join('<session>');
  return out;
};
const report = {ok: false, playwright: version('playwright-core'), browser: null, steps: [],
  pageErrors: [], consoleErrors: [], failedRequests: [], badResponses: [], problems: []};

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

// shot keeps a screenshot of the whole page, scrolled to the top (the
// tables' sticky headers stay in place).
async function shot(page, name) {
  if (!shots) return;
  await page.evaluate(() => window.scrollTo(0, 0)).catch(() => {});
  await page.screenshot({path: join(shots, `${name}.png`), fullPage: true}).catch(() => {});
}

const userDataDir = mkdtempSync(join(tmpdir(), 'meridian-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    viewport: {width: 1300, height: 900},
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 60_000,
  });
  report.browser = context.browser()?.version() ?? null;
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(timeout);
  page.on('pageerror', (e) => report.pageErrors.push(redact(e.message)));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') report.consoleErrors.push(redact(`${m.type()}: ${m.text()}`));
  });
  page.on('requestfailed', (r) => report.failedRequests.push(redact(`${r.method()} ${new URL(r.url()).pathname}: ${r.failure()?.errorText}`)));
  page.on('response', (r) => {
    if (r.status() >= 400) report.badResponses.push(redact(`${r.request().method()} ${new URL(r.url()).pathname}: ${r.status()}`));
  });

  const go = async () => {
    if (!(await step('signIn', async () => {
      await page.goto(base + '/admin/', {waitUntil: 'load'});
      await page.locator('#token').waitFor();
      await shot(page, 'admin-signin');
      await page.locator('#token').fill(token);
      await page.locator('#signin-form button[type=submit]').click();
      await page.locator('#console').waitFor();
      return {title: await page.title()};
    }))) return;

    if (!(await step('nodes', async () => {
      await page.waitForFunction((names) => {
        const rows = [...document.querySelectorAll('#nodes tbody tr')];
        return names.every((n) => rows.some((r) => r.dataset.name === n && r.cells[5].textContent === 'ready'));
      }, expectNodes, {timeout});
      const rows = await page.$$eval('#nodes tbody tr', (trs) => trs.map((r) => [...r.cells].map((c) => c.textContent)));
      return {rows, summary: await page.locator('#nodes-summary').innerText()};
    }))) return;

    await step('caches', async () => {
      await page.waitForFunction(() => document.querySelectorAll('#caches tbody tr').length > 0, null, {timeout});
      const rows = await page.$$eval('#caches tbody tr', (trs) => trs.map((r) => [...r.cells].map((c) => c.textContent)));
      return {rows};
    });

    await step('purge', async () => {
      await page.locator('#purge-tags').fill(purgeTags);
      await page.locator('#purge-form button[type=submit]').click();
      await page.waitForFunction(() => /published|failed/.test(document.querySelector('#purge-msg').textContent), null, {timeout});
      return {message: await page.locator('#purge-msg').innerText()};
    });

    await step('replay', async () => {
      const row = page.locator('#subs tbody tr', {has: page.locator('td', {hasText: new RegExp(`^${deadSub.replace(/[.]/g, '\\.')}$`)})});
      await row.locator('button', {hasText: 'Dead letters'}).click();
      await page.locator('#dead-letters tbody tr').first().waitFor();
      const before = await page.locator('#dead-letters tbody tr').count();
      const id = await page.locator('#dead-letters tbody tr').first().getAttribute('data-id');
      await page.locator('#dead-letters tbody tr').first().locator('button', {hasText: 'Replay'}).click();
      await page.waitForFunction(() => /Replayed|failed|refused|Unauthorized|no such/i.test(document.querySelector('#dead-msg').textContent), null, {timeout});
      return {id, before, after: await page.locator('#dead-letters tbody tr').count(), message: await page.locator('#dead-msg').innerText()};
    });

    await step('config', async () => ({config: redact(await page.locator('#config').innerText())}));

    // Organizations: a new one with an invite for its first admin (no
    // mail server here: the link is shown), then its geocoding quota.
    await step('orgs', async () => {
      const name = 'Console Org ' + Date.now().toString(36);
      await page.locator('#org-name').fill(name);
      await page.locator('#org-admin').fill('first-admin-' + Date.now().toString(36) + '@example.test');
      await page.locator('#org-form button[type=submit]').click();
      await page.waitForFunction(() => /Created|Not created/.test(document.querySelector('#org-msg').textContent), null, {timeout});
      const link = await page.locator('#org-link').inputValue().catch(() => '');
      const row = page.locator('#orgs tbody tr', {hasText: name});
      await row.waitFor();
      await page.locator('#quota-org').selectOption({label: name});
      await page.locator('#quota-service').selectOption('geocoding');
      await page.locator('#quota-value').fill('5');
      await page.locator('#quota-form button[type=submit]').click();
      await page.waitForFunction((name) => [...document.querySelectorAll('#orgs tbody tr')]
        .some((r) => r.textContent.includes(name) && r.textContent.includes('geocoding 0/5*')), name, {timeout});
      return {message: await page.locator('#org-msg').innerText(), invite: link.includes('/acc/invite?token=miv_'),
        quota: await page.locator('#quota-msg').innerText(), row: await row.innerText()};
    });
    await shot(page, 'admin-token');

    if (!sessionCookie) return;
    await context.addCookies([{name: 'meridian_session', value: sessionCookie, url: base}]);
    const tab = await context.newPage();
    tab.setDefaultTimeout(timeout);
    tab.on('pageerror', (e) => report.pageErrors.push(redact(e.message)));
    tab.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') report.consoleErrors.push(redact(`${m.type()}: ${m.text()}`));
    });
    tab.on('response', (r) => {
      if (r.status() >= 400) report.badResponses.push(redact(`${r.request().method()} ${new URL(r.url()).pathname}: ${r.status()}`));
    });
    if (!(await step('session', async () => {
      await tab.goto(base + '/admin/', {waitUntil: 'load'});
      await tab.locator('#console').waitFor();
      await tab.waitForFunction((email) => document.querySelector('#users').textContent.includes(email), userEmail, {timeout});
      return {who: await tab.locator('#who').innerText()};
    }))) return;
    await step('cancelJob', async () => {
      const row = tab.locator('#work tbody tr', {hasText: 'SQL job'}).first();
      await row.waitFor();
      const what = await row.innerText();
      await row.locator('button', {hasText: 'Cancel'}).click();
      await tab.waitForFunction(() => /Cancelled|failed/.test(document.querySelector('#work-msg').textContent), null, {timeout});
      await tab.waitForFunction(() => !document.querySelector('#work').textContent.includes('SQL job'), null, {timeout});
      return {row: what, message: await tab.locator('#work-msg').innerText()};
    });
    await shot(tab, 'admin-session');
    await step('auditedPurge', async () => {
      await tab.locator('#purge-tags').fill(purgeTags);
      await tab.locator('#purge-form button[type=submit]').click();
      await tab.waitForFunction(() => document.querySelector('#audit').textContent.includes('admin.purge'), null, {timeout});
      return {message: await tab.locator('#purge-msg').innerText()};
    });
  };
  await go();
  report.ok = report.problems.length === 0;
} catch (err) {
  report.problems.push(redact(err?.message ?? err));
} finally {
  await context?.close().catch(() => {});
  rmSync(userDataDir, {recursive: true, force: true});
}
process.stdout.write(JSON.stringify(report, null, 2) + '\n');
process.exit(report.ok ? 0 : 1);
