// End-to-end test of the web map in headless Chromium (Debian's chromium driven by
// playwright-core from npm): type a query, see the hits in the list with thumbnails, captions
// and scores, and their footprints on the map; no request leaves the server.
// usage: NODE_PATH=<dir with playwright-core> node query_web.js URL SCREENSHOT.png
'use strict';
const { chromium } = require('playwright-core');

const [url, shot] = process.argv.slice(2);
const fail = (msg) => { console.error('query_web: ' + msg); process.exit(1); };

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.GS_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const problems = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const origin = new URL(url).origin;
    page.on('request', (r) => {
      if (!r.url().startsWith(origin) && !r.url().startsWith('data:'))
        problems.push('request outside the server: ' + r.url());
    });
    page.on('requestfailed', (r) => problems.push('request failed: ' + r.url()));
    page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
    page.on('pageerror', (e) => problems.push('page error: ' + e.message));

    await page.goto(url, { waitUntil: 'load' });
    if (!(await page.evaluate(() => typeof L === 'object' && !!L.map)))
      fail('Leaflet did not load');
    await page.selectOption('#k', '10');
    await page.fill('#q', 'a river near the hills');
    await page.click('#search');
    await page.waitForFunction(() => document.querySelectorAll('#results li.hit').length === 10,
      null, { timeout: 20000 });
    const hits = await page.$$eval('#results li.hit', (items) => items.map((li) => ({
      rank: li.dataset.rank, tile: li.dataset.tileId,
      score: li.querySelector('.score').textContent,
      caption: (li.querySelector('.caption') || {}).textContent || '',
      img: li.querySelector('img').getAttribute('src'),
    })));
    hits.forEach((h, i) => {
      if (h.rank !== String(i + 1)) fail('hit ' + i + ' has rank ' + h.rank);
      if (!/^\d+$/.test(h.tile)) fail('hit ' + i + ' has no tile id');
      if (!/^-?\d\.\d{4}$/.test(h.score)) fail('hit ' + i + ' shows score "' + h.score + '"');
      if (h.img !== '/api/tile/' + h.tile + '.png') fail('hit ' + i + ' thumbnail ' + h.img);
    });
    if (!hits.some((h) => h.caption.length > 0)) fail('no hit shows a caption');
    const n_paths = await page.$$eval('path.gs-footprint', (p) => p.length);
    if (n_paths !== 10) fail('the map shows ' + n_paths + ' footprints, not 10');
    // The footprints must be where the hits are: inside the visible map area.
    const visible = await page.$$eval('path.gs-footprint', (paths) => {
      const m = document.getElementById('map').getBoundingClientRect();
      return paths.filter((p) => {
        const r = p.getBoundingClientRect();
        return r.width > 0 && r.right > m.left && r.left < m.right && r.bottom > m.top &&
          r.top < m.bottom;
      }).length;
    });
    if (visible !== 10) fail(visible + ' of 10 footprints are visible on the map');
    // Thumbnails load (rendered by the server with GDAL, then cached).
    await page.waitForFunction(() => Array.from(document.querySelectorAll('#results img'))
      .every((i) => i.complete && i.naturalWidth > 0), null, { timeout: 20000 });
    await page.click('#results li.hit:nth-child(3)');
    await page.waitForSelector('#results li.hit.active[data-rank="3"]');
    await page.waitForSelector('.leaflet-popup-content');
    const status = await page.textContent('#status');
    if (!/^10 hits in \d+ ms$/.test(status)) fail('status line "' + status + '"');
    // An error is shown, not thrown: an impossible time range.
    await page.fill('#from', '2030-01-02');
    await page.fill('#to', '2030-01-01');
    await page.click('#search');
    await page.waitForSelector('#status.error');
    await page.fill('#from', '');
    await page.fill('#to', '');
    await page.click('#search');
    await page.waitForFunction(() => /^10 hits/.test(document.getElementById('status').textContent));
    await page.click('#results li.hit:nth-child(1)');
    await page.waitForTimeout(400);
    await page.screenshot({ path: shot });
    // The 400 of the bad range is expected: drop its console line.
    const real = problems.filter((p) => !/status of 400/.test(p));
    if (real.length) fail(real.join('\n'));
    console.log('query_web: ok: 10 hits listed, 10 footprints on the map, thumbnails loaded; ' +
      'screenshot ' + shot);
  } finally {
    await browser.close();
  }
})().catch((e) => fail(e.stack || String(e)));
