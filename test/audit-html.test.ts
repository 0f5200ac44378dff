/**
 * The HTML audit report of the CNN sample in a real browser: Debian's headless Chromium driven
 * by playwright-core. No console errors, no network request besides the file itself, the charts
 * and zero-pattern images present and decoded, the tables sortable, and a screenshot saved in
 * the test's temporary directory. Skipped (with the reason) when /usr/bin/chromium is missing;
 * .ci/run installs it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';
import { repoPath, tempDir } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const BIN = repoPath('dist', 'src', 'cli', 'bin.js');
const SAMPLE = repoPath('samples', 'cnn-synthetic-80.tflite');
const skip = fs.existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium; .ci/run does it)`;

describe('audit --html in headless Chromium', () => {
  it('renders the CNN sample report: charts, zero patterns, tables, no errors, no network', { skip, timeout: 60_000 }, async (t) => {
    const dir = tempDir('audit-html');
    const html = path.join(dir, 'cnn-audit.html');
    const r = spawnSync(process.execPath, [BIN, 'audit', SAMPLE, '--html', html], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);

    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const problems: string[] = [];
      page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`); });
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      const url = pathToFileURL(html).href;
      const requests: string[] = [];
      page.on('request', (req) => { if (req.url() !== url && !req.url().startsWith('data:')) requests.push(req.url()); });
      page.on('requestfailed', (req) => { if (req.url() !== url) requests.push(`failed: ${req.url()}`); });

      const response = await page.goto(url, { waitUntil: 'load' });
      assert.ok(response === null || response.ok(), 'the file loads');
      assert.equal(await page.title(), `prunepack audit: ${SAMPLE}`);

      // Charts: totals, sparsity per weight, bytes per weight, each with bars.
      assert.equal(await page.locator('svg.chart').count(), 3);
      for (const id of ['chart-totals', 'chart-sparsity', 'chart-bytes']) {
        const bars = await page.locator(`#${id} rect`).count();
        assert.ok(bars >= 6, `${id} has ${bars} rects`);
      }
      // Zero patterns: decoded PNG data URLs.
      const images = await page.locator('figure.pattern img').evaluateAll((list) => list.map((img) => {
        const i = img as HTMLImageElement;
        return { complete: i.complete, width: i.naturalWidth, src: i.src.slice(0, 22) };
      }));
      assert.equal(images.length, 5, "the five weights with zeros (biases without zeros are left out)");
      for (const img of images) assert.deepEqual([img.complete, img.width > 0, img.src], [true, true, 'data:image/png;base64,']);
      // Tables: totals has the targets and the bound; the weights table sorts when a header is clicked.
      const totals = await page.locator('#totals tbody tr td:first-child').allTextContents();
      assert.deepEqual(totals, ['input file', 'tflite (dense)', 'tflite-sparse', 'information bound']);
      const firstName = () => page.locator('#weights tbody tr:first-child td:nth-child(2)').textContent();
      assert.equal(await firstName(), 'dense1/weights');
      await page.locator('#weights th', { hasText: 'dense bytes' }).click();
      assert.equal(await firstName(), 'flatten/shape', 'ascending by dense bytes');
      await page.locator('#weights th', { hasText: 'dense bytes' }).click();
      assert.equal(await firstName(), 'dense1/weights', 'descending');
      assert.equal(await page.locator('#fully-connected tbody tr').count(), 2);

      const shot = path.join(dir, 'cnn-audit.png');
      await page.screenshot({ path: shot, fullPage: true });
      const png = fs.readFileSync(shot);
      assert.ok(png.length > 20_000, `screenshot is ${png.length} bytes`);
      assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      t.diagnostic(`screenshot: ${shot}`);

      assert.deepEqual(problems, [], 'no console errors or warnings');
      assert.deepEqual(requests, [], 'no network requests');
    } finally {
      await browser.close();
    }
  });
});
