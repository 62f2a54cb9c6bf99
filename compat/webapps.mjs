// webapps.mjs walks Meridian's web apps in headless Chromium (driven by
// playwright-core, with the system's Chromium) the way a user would: the
// workspace sends a signed-out visitor to the accounts app, which takes a
// pasted token and comes back; the workspace lists the imports, uploads a
// file and watches it finish, runs a SQL query, submits a batch job and
// watches it finish; the accounts app shows the token's grants; signing
// out forgets the token; a sign-in told to go elsewhere stays here. It records what the pages show (DOM text) and
// prints a JSON report on stdout; the caller judges it. Exits 1 when a
// step could not be done (2 on bad usage). edge/webapps_e2e_test.go runs it.
//
//   BASE_URL        the edge, e.g. http://127.0.0.1:8080 (required)
//   TOKEN           an access token with the maps, sql and imports APIs (required)
//   UPLOAD_FILE     a file to upload through the import form (required)
//   UPLOAD_TABLE    the table to import it into (required)
//   SQL             a query for the SQL view (required)
//   JOB_SQL         a statement to submit as a batch job (required)
//   WAIT_FOR_TABLE  a table whose finished import the list must show first (optional)
//   CHROMIUM        the browser executable (default: /usr/bin/chromium)
//   TIMEOUT_MS      how long each step may wait (default: 30000)
//   SCREENSHOT_DIR  if set, a screenshot of the page after each step goes
//                   there as <step>.png, for people to look at (optional)

import {mkdtempSync, readFileSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {chromium} from 'playwright-core';

function env(name, fallback) {
  const v = process.env[name];
  if (v === undefined || v === '') {
    if (fallback === undefined) {
      process.stderr.write(`webapps.mjs: ${name} is required\n`);
      process.exit(2);
    }
    return fallback;
  }
  return v;
}

const base = env('BASE_URL').replace(/\/$/, '');
const token = env('TOKEN');
const uploadFile = env('UPLOAD_FILE');
const uploadTable = env('UPLOAD_TABLE');
const sql = env('SQL');
const jobSQL = env('JOB_SQL');
const waitForTable = env('WAIT_FOR_TABLE', '');
const executablePath = env('CHROMIUM', '/usr/bin/chromium');
const timeout = Number(env('TIMEOUT_MS', '30000'));
const screenshotDir = env('SCREENSHOT_DIR', '');

const watchdog = setTimeout(() => {
  process.stderr.write('webapps.mjs: watchdog expired\n');
  process.exit(3);
}, 12 * timeout + 60_000);
watchdog.unref();

// The token stays out of the report.
const redact = (s) => String(s).split(token).join('<token>').replace(/access_token=[^&\s"]+/g, 'access_token=…');

const report = {
  ok: false,
  playwright: readVersion('playwright-core'),
  browser: null,
  steps: [],
  pageErrors: [],
  consoleErrors: [],
  failedRequests: [],
  badResponses: [],
  problems: [],
};

function readVersion(name) {
  try {
    return JSON.parse(readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url), 'utf8')).version;
  } catch {
    return 'unknown';
  }
}

const pathOf = (url) => {
  const u = new URL(url);
  return u.pathname + u.search;
};

// text returns an element's rendered text, '' when it is absent.
const text = (page, selector) => page.locator(selector).first().innerText({timeout: 2000}).catch(() => '');

// step runs fn, recording what it returns, or why it failed.
async function step(page, name, fn) {
  const out = {name, ok: false};
  report.steps.push(out);
  try {
    Object.assign(out, await fn());
    out.ok = true;
  } catch (err) {
    out.problem = redact(err?.message ?? err);
    report.problems.push(`${name}: ${out.problem}`);
  }
  if (screenshotDir) await page.screenshot({path: join(screenshotDir, `${name}.png`), fullPage: true}).catch(() => {});
  return out.ok;
}

// importRow waits for the imports table row of table with a final status.
async function importRow(page, table) {
  const row = page.locator('#imports-table tbody tr', {has: page.locator('.dest', {hasText: new RegExp(`^${table.replace('.', '\\.')}$`)})}).first();
  await row.and(page.locator('[data-status="success"], [data-status="failure"], [data-status="cancelled"]')).waitFor({timeout});
  return row;
}

const userDataDir = mkdtempSync(join(tmpdir(), 'meridian-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    viewport: {width: 1200, height: 800},
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
  page.on('requestfailed', (r) => r.failure()?.errorText === 'net::ERR_ABORTED' || report.failedRequests.push(redact(`${r.method()} ${pathOf(r.url())}: ${r.failure()?.errorText}`)));
  page.on('response', (r) => {
    if (r.status() >= 400) report.badResponses.push(redact(`${r.request().method()} ${pathOf(r.url())}: ${r.status()}`));
  });

  const go = async () => {
    // Signed out, the workspace sends the visitor to the accounts app's sign-in.
    if (!(await step(page, 'redirect', async () => {
      await page.goto(base + '/', {waitUntil: 'load'});
      await page.waitForURL((u) => u.pathname === '/acc/');
      await page.locator('#signin').waitFor();
      return {url: pathOf(page.url()), heading: await text(page, 'main h1')};
    }))) return;

    // Signing in with the token comes back to the workspace, which lists the imports.
    if (!(await step(page, 'signIn', async () => {
      await page.locator('#token').fill(token);
      await page.locator('#signin button[type="submit"]').click();
      await page.waitForURL((u) => u.pathname === '/');
      await page.locator('#imports-table, #imports-empty').first().waitFor();
      if (waitForTable) await importRow(page, waitForTable);
      return {
        url: pathOf(page.url()),
        title: await page.title(),
        who: await text(page, '#who'),
        imports: await text(page, '#imports'),
        statuses: await page.locator('#imports-table tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.status)),
        previews: await page.locator('#imports-table a.preview').evaluateAll((as) => as.map((a) => {
          const u = new URL(a.href);
          return {path: u.pathname, name: u.searchParams.get('name'), token: u.searchParams.has('access_token'), target: a.target};
        })),
      };
    }))) return;

    // An upload through the form, watched until it finishes.
    await step(page, 'upload', async () => {
      await page.locator('#import-file').setInputFiles(uploadFile);
      await page.locator('#import-destination').fill(uploadTable);
      await page.locator('#import-submit').click();
      await page.locator('#import-message .note').waitFor();
      const message = await text(page, '#import-message');
      const row = await importRow(page, uploadTable.includes('.') ? uploadTable : `public.${uploadTable}`);
      return {message, row: await row.innerText(), status: await row.getAttribute('data-status')};
    });

    // A query in the SQL view, its result as a table.
    await step(page, 'sql', async () => {
      await page.locator('#nav a[href="/sql"]').click();
      await page.waitForURL((u) => u.pathname === '/sql');
      await page.locator('#sql-query').fill(sql);
      await page.locator('#sql-run').click();
      await page.locator('#sql-table, #sql-result .note').first().waitFor();
      return {
        url: pathOf(page.url()),
        meta: await text(page, '#sql-meta'),
        error: await text(page, '#sql-result .note'),
        columns: await page.locator('#sql-table thead th').allInnerTexts(),
        rows: await page.locator('#sql-table tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((c) => c.innerText))),
      };
    });

    // A batch job from the SQL view, then the jobs list until it finishes.
    await step(page, 'job', async () => {
      await page.locator('#sql-query').fill(jobSQL);
      await page.locator('#sql-job').click();
      await page.locator('#sql-result .note').waitFor();
      const message = await text(page, '#sql-result .note');
      await page.locator('#sql-result a[href="/jobs"]').click();
      await page.waitForURL((u) => u.pathname === '/jobs');
      const row = page.locator('#jobs-table tbody tr', {hasText: jobSQL}).first();
      await row.and(page.locator('[data-status="success"], [data-status="failure"], [data-status="cancelled"]')).waitFor();
      return {message, url: pathOf(page.url()), row: await row.innerText(), status: await row.getAttribute('data-status')};
    });

    await step(page, 'maps', async () => {
      await page.locator('#nav a[href="/preview"]').click();
      await page.locator('#map-form').waitFor();
      return {text: await text(page, '#maps')};
    });

    // The accounts app shows what the token grants, and the server's check.
    await step(page, 'account', async () => {
      await page.goto(base + '/acc/', {waitUntil: 'load'});
      await page.locator('#account').waitFor();
      await page.waitForFunction(() => document.getElementById('server-check')?.textContent !== 'checking…');
      return {
        grants: await page.locator('#grants tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((c) => c.innerText))),
        apis: await page.locator('#apis .chip').allInnerTexts(),
        expiry: await text(page, '#expiry'),
        server: await text(page, '#server-check'),
      };
    });

    // Client-side routes no app has: each app's own "not found".
    await step(page, 'deepLinks', async () => {
      const out = {};
      for (const path of ['/acc/tokens', '/no/such/view']) {
        const res = await page.goto(base + path, {waitUntil: 'load'});
        await page.locator('main h1, main h2').first().waitFor();
        out[path] = {status: res.status(), heading: await text(page, 'main h1, main h2'), brand: await text(page, '.brand')};
      }
      return {pages: out};
    });

    // Signing out forgets the token: the workspace then asks to sign in again.
    await step(page, 'signOut', async () => {
      await page.goto(base + '/jobs', {waitUntil: 'load'});
      await page.locator('#signout').click();
      await page.waitForURL((u) => u.pathname === '/acc/');
      await page.locator('#signin').waitFor();
      const stored = await page.evaluate(() => [sessionStorage.length, localStorage.length]);
      await page.goto(base + '/sql', {waitUntil: 'load'});
      await page.waitForURL((u) => u.pathname === '/acc/');
      return {stored, redirect: pathOf(page.url())};
    });

    // Sign-in never leads off this origin, whatever next says.
    await step(page, 'offsiteNext', async () => {
      await page.goto(base + '/acc/?next=' + encodeURIComponent('/\t/evil.example/'), {waitUntil: 'load'});
      await page.locator('#token').fill(token);
      await page.locator('#signin button[type="submit"]').click();
      await page.waitForURL((u) => u.pathname !== '/acc/');
      await page.locator('#imports').waitFor();
      return {url: page.url().startsWith(base + '/') ? pathOf(page.url()) : redact(page.url())};
    });
  };
  await go();
} catch (err) {
  report.problems.push(redact(`webapps.mjs: ${err?.message ?? err}`));
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(userDataDir, {recursive: true, force: true});
}

report.ok = report.problems.length === 0;
process.stdout.write(JSON.stringify(report, null, 1) + '\n');
process.exitCode = report.ok ? 0 : 1;
