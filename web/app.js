// geoscribe web map: runs a search through /api/search (GeoJSON), lists the hits with their
// thumbnails (/api/tile/<id>.png) and draws their footprints (and imagery) on a Leaflet map.
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

  function select(rank) {
    const hit = byRank.get(rank);
    if (!hit) return;
    document.querySelectorAll('.hit.active').forEach((n) => n.classList.remove('active'));
    hit.item.classList.add('active');
    hit.item.scrollIntoView({ block: 'nearest' });
    map.fitBounds(hit.layer.getBounds(), { maxZoom: 17, padding: [80, 80] });
    hit.layer.openPopup();
  }

  function addHit(f) {
    const p = f.properties;
    const item = el('li', 'hit');
    item.dataset.rank = p.rank;
    item.dataset.tileId = p.tile_id;
    const img = el('img');
    img.loading = 'lazy';
    img.alt = 'tile ' + p.tile_id;
    img.src = '/api/tile/' + p.tile_id + '.png';
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

    const layer = L.geoJSON(f, {
      style: { color: '#d2461e', weight: 2, fillOpacity: 0.08, className: 'gs-footprint' },
    });
    layer.bindPopup(() => {
      const d = el('div');
      d.appendChild(el('b', '', '#' + p.rank + '  ' + p.score.toFixed(4)));
      d.appendChild(el('div', '', p.time || 'time unknown'));
      if (p.caption) d.appendChild(el('div', '', p.caption));
      return d;
    });
    layer.on('click', () => select(p.rank));
    layer.addTo(footprints);
    if ($('overlay').checked && p.rank <= MAX_OVERLAYS) {
      const [w, s, e, n] = p.bbox;
      if (w <= e) L.imageOverlay(img.src, [[s, w], [n, e]], { opacity: 0.9 }).addTo(imagery);
    }
    byRank.set(p.rank, { item, layer });
  }

  async function search(ev) {
    if (ev) ev.preventDefault();
    const q = $('q').value.trim();
    if (!q) return;
    const params = new URLSearchParams({ q, k: $('k').value, format: 'geojson' });
    if ($('from').value) params.set('from', $('from').value);
    if ($('to').value) params.set('to', $('to').value);
    if ($('in-view').checked) {
      const b = map.getBounds();
      const clamp = (v, m) => Math.max(-m, Math.min(m, v));
      params.set('bbox', [clamp(b.getWest(), 180), clamp(b.getSouth(), 90),
        clamp(b.getEast(), 180), clamp(b.getNorth(), 90)].map((v) => v.toFixed(6)).join(','));
    }
    status('searching…');
    $('search').disabled = true;
    const t0 = performance.now();
    try {
      const r = await fetch('/api/search?' + params.toString());
      const body = await r.json();
      if (!r.ok) throw new Error(body.error ? body.error.message : r.statusText);
      $('results').replaceChildren();
      footprints.clearLayers();
      imagery.clearLayers();
      byRank.clear();
      body.features.forEach(addHit);
      const ms = Math.round(performance.now() - t0);
      status(body.features.length + ' hits in ' + ms + ' ms');
      if (body.features.length)
        map.fitBounds(footprints.getBounds(), { maxZoom: 12, padding: [20, 20] });
    } catch (e) {
      status('search failed: ' + e.message, true);
    } finally {
      $('search').disabled = false;
    }
  }

  $('search-form').addEventListener('submit', search);
  const initial = new URLSearchParams(location.search).get('q');
  if (initial) {
    $('q').value = initial;
    search();
  }
})();
