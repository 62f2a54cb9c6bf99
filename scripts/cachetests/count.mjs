// Counts the required cache-tests passed in a results file written by the
// suite's CLI: node count.mjs SUITE_DIR RESULTS.json. "Required" follows
// cache-tests.fyi: tests of kind "required" or without a kind, browser-only
// ones excluded; a test whose dependency failed does not pass.
import fs from 'fs'
import path from 'path'
import { pathToFileURL } from 'url'

const dir = path.resolve(process.argv[2])
const url = p => pathToFileURL(path.join(dir, p)).href
const { determineTestResult, resultTypes } = await import(url('test-engine/lib/results.mjs'))
const tests = (await import(url('tests/index.mjs'))).default
const results = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'))
let required = 0
let passed = 0
const fails = []
for (const suite of tests) {
  for (const t of suite.tests) {
    if ((t.kind !== undefined && t.kind !== 'required') || t.browser_only) continue
    required++
    const r = determineTestResult(tests, t.id, results)
    if (r === resultTypes.pass) passed++
    else fails.push(`${r[2]} ${t.id}: ${t.name} -- ${JSON.stringify(results[t.id])}`)
  }
}
console.log(`required passed: ${passed}/${required}`)
for (const f of fails) console.log('  ' + f)
