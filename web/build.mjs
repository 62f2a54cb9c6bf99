// build.mjs bundles Meridian's web apps with esbuild, each into the dist/
// folder beside its page in ../static/, which the Go build embeds
// (static/webapps.go):
//
//   builder/dist/             the Builder (src/main.jsx)
//   accounts/dist/            the accounts app (src/accounts/)
//   admin/dist/               the admin console (src/admin/)
//   workspace/dist/           the workspace (src/workspace/)
//
// Each holds <app>.js, the app as an ES module, and <app>.css, its style
// sheet. The Builder's also holds:
//
//   maplibre-gl-worker.js     MapLibre's worker (of its CSP build), as published
//   *-worker.js               loaders.gl's and @deck.gl/carto's tile parsers
//   licenses.txt              the licences of what the bundles redistribute
//
// `node build.mjs --watch` rebuilds on change.
import * as esbuild from 'esbuild';
import {copyFileSync, mkdirSync, readFileSync, writeFileSync, existsSync} from 'node:fs';
import {dirname, join} from 'node:path';
import {fileURLToPath} from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'static', 'builder', 'dist');
mkdirSync(out, {recursive: true});

// apps maps each app to its entry point under src/.
const apps = {builder: 'main.jsx', accounts: 'accounts/main.jsx', admin: 'admin/main.jsx', workspace: 'workspace/main.jsx'};

const options = {
  entryPoints: Object.fromEntries(Object.entries(apps).map(([app, src]) => [`${app}/dist/${app}`, join(here, 'src', src)])),
  outdir: join(here, '..', 'static'),
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: false,
  legalComments: 'none',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  loader: {'.js': 'jsx'},
  define: {'process.env.NODE_ENV': '"production"'},
  logLevel: 'warning',
};

// The licences of the bundled packages go along with the build.
function licenses() {
  const lock = JSON.parse(readFileSync(join(here, 'package-lock.json'), 'utf8'));
  const parts = [];
  for (const [path, pkg] of Object.entries(lock.packages)) {
    if (!path.startsWith('node_modules/') || pkg.dev || path.includes('esbuild')) continue;
    for (const name of ['LICENSE', 'LICENSE.md', 'LICENSE.txt', 'license', 'LICENCE']) {
      const f = join(here, path, name);
      if (existsSync(f)) {
        parts.push(`== ${path.slice('node_modules/'.length)} ${pkg.version} ==\n${readFileSync(f, 'utf8').trim()}\n`);
        break;
      }
    }
  }
  writeFileSync(join(out, 'licenses.txt'), parts.join('\n'));
}

// A customer's fetchMap page for the compatibility tests (compat/), not
// embedded: examples/dist/fetchmap.js.
async function buildExamples() {
  await esbuild.build({...options, entryPoints: {fetchmap: join(here, 'examples', 'fetchmap.js')}, outdir: join(here, 'examples', 'dist')});
}

copyFileSync(join(here, 'node_modules', 'maplibre-gl', 'dist', 'maplibre-gl-csp-worker.js'), join(out, 'maplibre-gl-worker.js'));
// The tile parsers' workers, which loaders.gl would fetch from unpkg.com:
// served beside the bundle instead (src/render.js points loaders.gl at
// them), under lower-case names.
for (const [from, to] of [
  ['@loaders.gl/mvt/dist/mvt-worker.js', 'mvt-worker.js'],
  ['@deck.gl/carto/dist/cartoSpatialTile-worker.js', 'carto-spatial-tile-worker.js'],
  ['@deck.gl/carto/dist/cartoPropertiesTile-worker.js', 'carto-properties-tile-worker.js'],
  ['@deck.gl/carto/dist/cartoVectorTile-worker.js', 'carto-vector-tile-worker.js'],
  ['@deck.gl/carto/dist/cartoRasterTile-worker.js', 'carto-raster-tile-worker.js'],
]) {
  copyFileSync(join(here, 'node_modules', from), join(out, to));
}
licenses();
if (process.argv.includes('--watch')) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else {
  const res = await esbuild.build({...options, metafile: true});
  await buildExamples();
  const sizes = Object.entries(res.metafile.outputs).map(([f, o]) => `${f.split('/').pop()} ${(o.bytes / 1024).toFixed(0)} KiB`);
  console.log('web apps:', sizes.join(', '));
}
