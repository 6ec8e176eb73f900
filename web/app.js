// geoscribe web map: two searches behind one form. Tiles: /api/search (GeoJSON), the hits with
// their thumbnails (/api/tile/<id>.png). Changes: /api/changes (GeoJSON), pairs of the same
// place at two times whose change caption matches the text (or, without text, the largest
// changes), each with both thumbnails (/api/change/<pair id>/before.png, after.png: the tile on
// the pair's grid, warped where the change run warped it) and times. Footprints (and imagery)
// go on a Leaflet map.
// No external services: there is no base map, only the hits, a graticule and the imagery.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const map = L.map('map', { worldCopyJump: true, zoomSnap: 0.25 }).setView([20, 0], 2);
  const graticule = L.layerGroup().addTo(map);
  const imagery = L.layerGroup().addTo(map);
  const footprints = L.featureGroup().addTo(map);
  const byRank = new Map();
  const MAX_OVERLAYS = 100;
  let mode = 'tiles'; // or 'changes'

  // A 10-degree graticule (1 degree when zoomed in), redrawn on every view change.
  function drawGraticule() {
    graticule.clearLayers();
    const b = map.getBounds(), step = map.getZoom() >= 7 ? 1 : 10;
    const style = { color: '#9fb3c4', weight: 1, interactive: false };
    for (let x = Math.floor(b.getWest() / step) * step; x <= b.getEast(); x += step)
      L.polyline([[-85, x], [85, x]], style).addTo(graticule);
    for (let y = Math.max(-80, Math.floor(b.getSouth() / step) * step);
      y <= Math.min(80, b.getNorth()); y += step)
      L.polyline([[y, b.getWest() - 360], [y, b.getEast() + 360]], style).addTo(graticule);
  }
  map.on('moveend', drawGraticule);
  drawGraticule();

  function status(text, isError) {
    $('status').textContent = text;
    $('status').classList.toggle('error', !!isError);
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function baseName(uri) {
    const i = uri.lastIndexOf('/');
    return i >= 0 ? uri.slice(i + 1) : uri;
  }

  // "2015-01-01T00:00:00Z" -> "2015-01-01" when the time is midnight, else as is.
  function shortTime(t) {
    return t && t.endsWith('T00:00:00Z') ? t.slice(0, 10) : t;
  }

  function thumb(url, alt) {
    const img = el('img');
    img.loading = 'lazy';
    img.alt = alt;
    img.src = url;
    // No thumbnail (a scene gone, an output without changes.yaml): keep the grey box.
    img.addEventListener('error', () => img.classList.add('missing'));
    return img;
  }

  function select(rank) {
    const hit = byRank.get(rank);
    if (!hit) return;
    document.querySelectorAll('.hit.active').forEach((n) => n.classList.remove('active'));
    hit.item.classList.add('active');
    hit.item.scrollIntoView({ block: 'nearest' });
    map.fitBounds(hit.layer.getBounds(), { maxZoom: 17, padding: [80, 80] });
    hit.layer.openPopup();
  }

  // The footprint of a hit, its popup and its imagery (the thumbnail at url on the footprint).
  function addFootprint(f, rank, color, cls, popup, url) {
    const layer = L.geoJSON(f, {
      style: { color, weight: 2, fillOpacity: 0.08, className: 'gs-footprint ' + cls },
    });
    layer.bindPopup(popup);
    layer.on('click', () => select(rank));
    layer.addTo(footprints);
    if ($('overlay').checked && rank <= MAX_OVERLAYS) {
      const [w, s, e, n] = f.properties.bbox;
      if (w <= e) L.imageOverlay(url, [[s, w], [n, e]], { opacity: 0.9 }).addTo(imagery);
    }
    return layer;
  }

  function addHit(f) {
    const p = f.properties;
    const item = el('li', 'hit');
    item.dataset.rank = p.rank;
    item.dataset.tileId = p.tile_id;
    const img = thumb('/api/tile/' + p.tile_id + '.png', 'tile ' + p.tile_id);
    const meta = el('div', 'meta');
    const top = el('div', 'top', '#' + p.rank + ' ');
    top.appendChild(el('span', 'score', p.score.toFixed(4)));
    meta.appendChild(top);
    meta.appendChild(el('div', 'time', p.time || 'time unknown'));
    meta.appendChild(el('div', 'scene', baseName(p.scene) + '  ·  tile ' + p.tile_id));
    if (p.caption) meta.appendChild(el('div', 'caption', p.caption));
    item.appendChild(img);
    item.appendChild(meta);
    item.addEventListener('click', () => select(p.rank));
    $('results').appendChild(item);

    const layer = addFootprint(f, p.rank, '#d2461e', 'gs-tile', () => {
      const d = el('div');
      d.appendChild(el('b', '', '#' + p.rank + '  ' + p.score.toFixed(4)));
      d.appendChild(el('div', '', p.time || 'time unknown'));
      if (p.caption) d.appendChild(el('div', '', p.caption));
      return d;
    }, img.src);
    byRank.set(p.rank, { item, layer });
  }

  function changeThumb(p, side) {
    return '/api/change/' + p.pair_id + '/' + side + '.png';
  }

  // One change pair: both thumbnails with their times, the change score (and the text
  // similarity when there was a text), the caption; the footprint with the same in its popup.
  function addChange(f) {
    const p = f.properties;
    const item = el('li', 'hit change');
    item.dataset.rank = p.rank;
    item.dataset.pairId = p.pair_id;
    const pair = el('div', 'pair');
    for (const side of ['before', 'after']) {
      const fig = el('figure', side);
      fig.appendChild(thumb(changeThumb(p, side), side + ' ' + shortTime(p[side + '_time'])));
      fig.appendChild(el('figcaption', '', shortTime(p[side + '_time'])));
      pair.appendChild(fig);
    }
    const meta = el('div', 'meta');
    const top = el('div', 'top', '#' + p.rank + ' ');
    const score = el('span', 'score', p.score.toFixed(4));
    score.title = 'change score (cosine distance of the two tiles, 0..2)';
    top.appendChild(score);
    if (p.similarity !== null) {
      const sim = el('span', 'similarity', ' match ' + p.similarity.toFixed(4));
      sim.title = 'similarity of the text and the caption';
      top.appendChild(sim);
    }
    meta.appendChild(top);
    meta.appendChild(el('div', 'time',
      shortTime(p.before_time) + ' → ' + shortTime(p.after_time)));
    meta.appendChild(el('div', 'scene', baseName(p.before_scene) + ' → ' +
      baseName(p.after_scene) + '  ·  pair ' + p.pair_id));
    meta.appendChild(el('div', 'caption', p.caption || 'no caption (below the caption gate)'));
    if (!p.caption) meta.lastChild.classList.add('none');
    item.appendChild(pair);
    item.appendChild(meta);
    item.addEventListener('click', () => select(p.rank));
    $('results').appendChild(item);

    const layer = addFootprint(f, p.rank, '#1e6fd2', 'gs-change', () => {
      const d = el('div', 'gs-popup-change');
      d.appendChild(el('b', '', '#' + p.rank + '  change ' + p.score.toFixed(4)));
      d.appendChild(el('div', '', shortTime(p.before_time) + ' → ' + shortTime(p.after_time)));
      if (p.caption) d.appendChild(el('div', '', p.caption));
      return d;
    }, changeThumb(p, 'after'));
    byRank.set(p.rank, { item, layer });
  }

  async function search(ev) {
    if (ev) ev.preventDefault();
    const q = $('q').value.trim();
    if (!q && mode === 'tiles') return; // changes without text: the largest changes
    const params = new URLSearchParams({ k: $('k').value, format: 'geojson' });
    if (q) params.set('q', q);
    if ($('from').value) params.set('from', $('from').value);
    if ($('to').value) params.set('to', $('to').value);
    if ($('caption').value.trim()) params.set('caption', $('caption').value.trim());
    if ($('in-view').checked) {
      const b = map.getBounds();
      const clamp = (v, m) => Math.max(-m, Math.min(m, v));
      params.set('bbox', [clamp(b.getWest(), 180), clamp(b.getSouth(), 90),
        clamp(b.getEast(), 180), clamp(b.getNorth(), 90)].map((v) => v.toFixed(6)).join(','));
    }
    const searched = mode;
    status('searching…');
    $('search').disabled = true;
    const t0 = performance.now();
    try {
      const api = searched === 'changes' ? '/api/changes?' : '/api/search?';
      const r = await fetch(api + params.toString());
      const body = await r.json();
      if (!r.ok) throw new Error(body.error ? body.error.message : r.statusText);
      if (searched !== mode) return; // the tab changed meanwhile
      clearResults();
      body.features.forEach(searched === 'changes' ? addChange : addHit);
      const ms = Math.round(performance.now() - t0);
      status(body.features.length + (searched === 'changes' ? ' changes' : ' hits') + ' in ' +
        ms + ' ms');
      if (body.features.length)
        map.fitBounds(footprints.getBounds(), { maxZoom: 12, padding: [20, 20] });
    } catch (e) {
      status('search failed: ' + e.message, true);
    } finally {
      $('search').disabled = false;
    }
  }

  function clearResults() {
    $('results').replaceChildren();
    footprints.clearLayers();
    imagery.clearLayers();
    byRank.clear();
  }

  // The tabs: tile search or change search (enabled when the output has change records).
  function setMode(m) {
    if (m === 'changes' && $('mode-changes').disabled) m = 'tiles';
    if (m !== mode) {
      clearResults();
      status('');
    }
    mode = m;
    for (const t of ['tiles', 'changes']) {
      const b = $('mode-' + t);
      b.setAttribute('aria-selected', String(t === m));
      b.classList.toggle('active', t === m);
    }
    document.body.dataset.mode = m;
    $('q').required = m === 'tiles';
    $('q').placeholder = m === 'tiles' ? 'airplanes parked near a terminal'
      : 'new buildings (empty: the largest changes)';
    $('results').setAttribute('aria-label', m === 'tiles' ? 'hits' : 'changes');
  }
  $('mode-tiles').addEventListener('click', () => setMode('tiles'));
  $('mode-changes').addEventListener('click', () => setMode('changes'));

  async function init() {
    const args = new URLSearchParams(location.search);
    try {
      const r = await fetch('/api/health');
      const h = await r.json();
      const n = h.n_changes || 0;
      $('mode-changes').disabled = n === 0;
      $('mode-changes').title = n ? n + ' change records (pairs of the same place at two times)'
        : 'this output has no change records (run `geoscribe changes`)';
    } catch (e) {
      $('mode-changes').disabled = true;
    }
    setMode(args.get('mode') === 'changes' ? 'changes' : 'tiles');
    const initial = args.get('q');
    if (initial) $('q').value = initial;
    if (initial || (mode === 'changes' && args.has('mode'))) search();
  }

  $('search-form').addEventListener('submit', search);
  init();
})();
