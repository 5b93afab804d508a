// Stamping: choose or drop a PDF, check it as the server would, render the chosen page with
// pdf.js, place the 32 mm stamp by click, drag, arrow keys or numbers, upload with progress
// (presigned PUT or POST), then follow the document until STAMPED or REJECTED.

import { api, ApiFailure, sleep, withRetries } from './api.js';
import { t } from './i18n.js';
import { refresh as refreshAccount, refreshQuota } from './account.js';
import { $, announce, el, showProblem } from './ui.js';
import { checkBytes, clampPlacement, loadPdfJs, openChecked, overlapsAny, pageSizeMm, Refusal, signatureBoxes, STAMP_MM } from './pdf-check.js';

const DEFAULT_MARGIN_MM = 15;
const RECENT_LIMIT = 20;

let account = '';
let chosen = null; // {file, bytes, doc, pages}
let view = null; // {page, width, height, boxes}
let renderTask = null;
const watching = new Set();

// ---- remembered documents (the API has no list of them; their state always comes from it) ----

const recentKey = () => `emeterai-documents-${account}`;
function recentIds() {
  try { return JSON.parse(localStorage.getItem(recentKey()) || '[]'); } catch { return []; }
}
function remember(id) {
  const ids = [id, ...recentIds().filter((x) => x !== id)].slice(0, RECENT_LIMIT);
  try { localStorage.setItem(recentKey(), JSON.stringify(ids)); } catch { /* storage full: shown until reload */ }
}

// ---- choosing and checking ----

function pdfState(text, bad = false) {
  const p = $('pdf-state');
  p.textContent = text;
  p.className = bad ? 'problem inline' : 'help';
}

async function choose(file) {
  chosen = null;
  view = null;
  $('placement').hidden = true;
  showProblem(null);
  if (!file) { pdfState(''); return; }
  pdfState(t('checking_pdf'));
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    checkBytes(bytes);
    pdfState(t('loading_viewer'));
    const { doc, pages } = await openChecked(bytes);
    chosen = { file, bytes, doc, pages };
    $('page').max = pages;
    $('page').value = pages; // the API's default: the last page
    $('placement').hidden = false;
    await showPage(pages, { place: 'default' });
    pdfState(t('pdf_ok', { pages }));
  } catch (e) {
    const code = e instanceof Refusal ? e.code : 'corrupt';
    pdfState(t(`reason_${code}`), true);
  }
}

// ---- the rendered page and the stamp box ----

async function showPage(n, { place } = {}) {
  if (!chosen) return;
  const { width, height, page } = await pageSizeMm(chosen.doc, n);
  const boxes = await signatureBoxes(page);
  view = { n, width, height, boxes };
  const canvas = $('page-canvas');
  const cssWidth = $('preview').clientWidth || 320;
  const scale = (cssWidth / page.getViewport({ scale: 1 }).width) * Math.min(window.devicePixelRatio || 1, 2);
  const viewport = page.getViewport({ scale });
  canvas.width = Math.floor(viewport.width);
  canvas.height = Math.floor(viewport.height);
  renderTask?.cancel();
  renderTask = page.render({ canvas, canvasContext: canvas.getContext('2d'), viewport });
  await renderTask.promise.catch((e) => { if (e?.name !== 'RenderingCancelledException') throw e; });
  $('sig-boxes').replaceChildren(...boxes.map((b) => {
    const hatch = el('div', { class: 'sig-box' });
    hatch.style.cssText = box(b.x, b.y, b.w, b.h); // CSSOM: allowed by the page's style-src 'self'
    return hatch;
  }));
  if (place === 'default') {
    setPlacement(width - STAMP_MM - DEFAULT_MARGIN_MM, height - STAMP_MM - DEFAULT_MARGIN_MM);
  } else {
    setPlacement(Number($('x').value), Number($('y').value));
  }
}

const pct = (v, total) => `${(v / total) * 100}%`;
const box = (x, y, w, h) => `left:${pct(x, view.width)};top:${pct(y, view.height)};width:${pct(w, view.width)};height:${pct(h, view.height)}`;

function setPlacement(x, y) {
  if (!view) return;
  const placed = clampPlacement(Number.isFinite(x) ? x : 0, Number.isFinite(y) ? y : 0, view.width, view.height);
  $('x').value = placed.x;
  $('y').value = placed.y;
  drawStampBox();
}

function drawStampBox() {
  if (!view) return;
  const x = Number($('x').value), y = Number($('y').value);
  const stampBox = $('stamp-box');
  stampBox.style.cssText = box(x, y, STAMP_MM, STAMP_MM);
  stampBox.setAttribute('aria-label', t('stamp_box', { x, y }));
  const problem = placementProblem();
  stampBox.classList.toggle('bad', !!problem);
  $('place-problem').textContent = problem ? t(`reason_${problem}`) : '';
  $('place-problem').hidden = !problem;
}

/** The rejection code the server would give this placement, if any. */
function placementProblem() {
  if (!view) return null;
  const x = Number($('x').value), y = Number($('y').value);
  if (!Number.isFinite(x) || !Number.isFinite(y) || x < 0 || y < 0 || x + STAMP_MM > view.width + 0.01 || y + STAMP_MM > view.height + 0.01) return 'placement_out_of_bounds';
  if (overlapsAny(x, y, view.boxes)) return 'placement_overlaps_signature';
  return null;
}

function mmAt(event) {
  const rect = $('preview').getBoundingClientRect();
  return { x: ((event.clientX - rect.left) / rect.width) * view.width, y: ((event.clientY - rect.top) / rect.height) * view.height };
}

function initPlacement() {
  const preview = $('preview');
  const stampBox = $('stamp-box');
  let drag = null;
  preview.addEventListener('pointerdown', (e) => {
    if (!view) return;
    e.preventDefault();
    const at = mmAt(e);
    if (e.target === stampBox) {
      drag = { dx: at.x - Number($('x').value), dy: at.y - Number($('y').value) };
    } else {
      // A click or tap puts the stamp's centre there.
      setPlacement(at.x - STAMP_MM / 2, at.y - STAMP_MM / 2);
      drag = { dx: STAMP_MM / 2, dy: STAMP_MM / 2 };
    }
    preview.setPointerCapture(e.pointerId);
  });
  preview.addEventListener('pointermove', (e) => {
    if (!drag || !view) return;
    const at = mmAt(e);
    setPlacement(at.x - drag.dx, at.y - drag.dy);
  });
  const stop = () => { if (drag) { drag = null; announce(stampBox.getAttribute('aria-label')); } };
  preview.addEventListener('pointerup', stop);
  preview.addEventListener('pointercancel', stop);
  stampBox.addEventListener('keydown', (e) => {
    const step = e.shiftKey ? 10 : 1;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    const move = moves[e.key];
    if (!move) return;
    e.preventDefault();
    setPlacement(Number($('x').value) + move[0], Number($('y').value) + move[1]);
  });
  for (const id of ['x', 'y']) {
    $(id).addEventListener('input', drawStampBox);
    $(id).addEventListener('change', () => setPlacement(Number($('x').value), Number($('y').value)));
  }
  $('page').addEventListener('change', () => {
    if (!chosen) return;
    const n = Math.min(Math.max(1, Math.round(Number($('page').value) || 1)), chosen.pages);
    $('page').value = n;
    showPage(n).catch(() => pdfState(t('reason_corrupt'), true));
  });
}

// ---- uploading and following the document ----

function upload(spec, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(spec.method, spec.url);
    let body = file;
    if (spec.method === 'POST') {
      // A presigned POST: the policy's fields first, the file last.
      body = new FormData();
      for (const [name, value] of Object.entries(spec.fields || {})) body.append(name, value);
      body.append('file', file, file.name);
    } else {
      for (const [name, value] of Object.entries(spec.headers || {})) xhr.setRequestHeader(name, value);
    }
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onload = () => (xhr.status >= 200 && xhr.status < 300 ? resolve() : reject(new ApiFailure(xhr.status, `upload_${xhr.status}`)));
    xhr.onerror = () => reject(new ApiFailure(0, 'network'));
    xhr.ontimeout = () => reject(new ApiFailure(0, 'network'));
    xhr.send(body);
  });
}

async function stamp() {
  showProblem(null);
  if (!chosen || !view) { $('pdf').focus(); return; }
  const problem = placementProblem();
  if (problem) { showProblem(t(`reason_${problem}`)); $('stamp-box').focus(); return; }
  const button = $('stamp');
  button.disabled = true;
  try {
    const quota = await refreshQuota();
    if (quota.available < 1) { showProblem(t('need_quota')); $('quantity').focus(); return; }
    const placement = { page: view.n, x_mm: Number($('x').value), y_mm: Number($('y').value) };
    const name = (chosen.file.name || 'surat.pdf').replace(/[\u0000-\u001f\u007f]/g, '').slice(0, 200) || 'surat.pdf';
    const doc = await withRetries(() => api('POST', '/v1/documents', { body: { file_name: name, placement } }), { tries: 3 });
    remember(doc.document_id);
    showDocument({ ...doc, file_name: name });
    $('upload').hidden = false;
    $('progress').value = 0;
    let tries = 0;
    for (;;) {
      try {
        await upload(doc.upload, chosen.file, (share) => { $('progress').value = Math.round(share * 100); });
        break;
      } catch (e) {
        // The same presigned request again, for a dropped connection; a refusal is final.
        if (e.status !== 0 || ++tries >= 3) throw e;
        await sleep(1000 * tries);
      }
    }
    $('progress').value = 100;
    // This file is on its way: clear the choice so a second click cannot stamp it twice.
    chosen = null;
    view = null;
    $('pdf').value = '';
    $('placement').hidden = true;
    pdfState('');
    follow(doc.document_id);
  } catch (e) {
    showProblem(e instanceof ApiFailure && e.code?.startsWith('upload_') ? t('upload_failed') : e.message);
  } finally {
    button.disabled = false;
    $('upload').hidden = true;
  }
}

function documentItem(doc) {
  const id = doc.document_id;
  const heading = `doc-${id}-h`;
  const status = doc.status;
  const done = status === 'STAMPED' || status === 'REJECTED';
  const reason = doc.rejection ? reasonText(doc.rejection.code) : null;
  return el('li', { id: `doc-${id}`, 'aria-busy': done ? 'false' : 'true' },
    el('h3', { id: heading }, doc.file_name || id),
    el('p', {}, `${t('status')}: `, el('span', { class: `state ${status === 'STAMPED' ? 'ok' : status === 'REJECTED' ? 'bad' : ''}` }, status), ` (${t(`doc_status_${status}`)})`),
    reason ? el('p', { class: 'reason' }, reason) : null,
    doc.serial ? el('p', {}, `${t('serial')}: `, el('code', {}, doc.serial)) : null,
    status === 'STAMPED'
      ? el('div', { class: 'actions' },
        doc.download_url ? el('a', { class: 'button', href: doc.download_url, 'aria-describedby': heading, onclick: (e) => download(e, doc) }, t('download')) : null,
        doc.serial ? el('a', { href: `/v1/verify/${encodeURIComponent(doc.serial)}${document.documentElement.lang === 'en' ? '?lang=en' : ''}`, 'aria-describedby': heading }, t('verify_link')) : null)
      : null,
  );
}

function reasonText(code) {
  const key = `reason_${code}`;
  return t(key) === key ? t('reason_unknown', { code }) : t(key);
}

/** Saves the stamped file under a clear name (a cross-origin link cannot name it). An expired
 * link is renewed from the API; without fetch, the link itself opens the file. */
async function download(event, doc) {
  event.preventDefault();
  const link = event.currentTarget;
  const fetchFile = async (url) => {
    const response = await fetch(url);
    if (!response.ok) throw new ApiFailure(response.status, `download_${response.status}`);
    return response.blob();
  };
  try {
    let blob;
    try {
      blob = await fetchFile(link.href);
    } catch (e) {
      if (!(e instanceof ApiFailure) || e.status === 0) throw e;
      const fresh = await api('GET', `/v1/documents/${encodeURIComponent(doc.document_id)}`);
      link.href = fresh.download_url;
      blob = await fetchFile(fresh.download_url);
    }
    const url = URL.createObjectURL(new Blob([blob], { type: 'application/pdf' }));
    const save = el('a', { href: url, download: stampedName(doc.file_name) });
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch {
    location.assign(link.href);
  }
}

const stampedName = (name) => (name || 'dokumen.pdf').replace(/(\.pdf)?$/i, '-meterai.pdf');

function showDocument(doc) {
  const list = $('documents');
  const item = documentItem(doc);
  const old = document.getElementById(`doc-${doc.document_id}`);
  const focused = old?.contains(document.activeElement) ? document.activeElement.textContent : null;
  if (old) old.replaceWith(item);
  else list.prepend(item);
  if (focused) [...item.querySelectorAll('a, button')].find((n) => n.textContent === focused)?.focus();
  $('documents-empty').hidden = list.childElementCount > 0;
}

/** Polls a document until STAMPED or REJECTED: every second at first, then more slowly. */
async function follow(id) {
  if (watching.has(id)) return;
  watching.add(id);
  const started = Date.now();
  let toldSlow = false;
  try {
    for (let i = 0; ; i++) {
      let doc;
      try {
        doc = await api('GET', `/v1/documents/${encodeURIComponent(id)}`);
      } catch (e) {
        if (e instanceof ApiFailure && e.status === 404) { return; }
        if (e instanceof ApiFailure && e.status === 401) return;
        await sleep(5000);
        continue;
      }
      const item = document.getElementById(`doc-${id}`);
      const name = item?.querySelector('h3')?.textContent;
      showDocument({ ...doc, file_name: doc.file_name || name });
      if (doc.status === 'STAMPED') {
        announce(t('stamped_now', { name: doc.file_name || name }));
        refreshAccount();
        return;
      }
      if (doc.status === 'REJECTED') {
        announce(t('rejected_now', { name: doc.file_name || name, reason: reasonText(doc.rejection?.code) }));
        refreshAccount();
        return;
      }
      if (doc.status === 'AWAITING_UPLOAD' && Date.now() - started > 300_000) return; // never uploaded
      if (!toldSlow && Date.now() - started > 90_000) { toldSlow = true; announce(t('doc_slow')); }
      await sleep(i < 10 ? 1000 : i < 30 ? 3000 : 10000);
    }
  } finally {
    watching.delete(id);
  }
}

/** The remembered documents, as the API knows them now; unfinished ones are followed. */
export async function loadDocuments(signedInAs) {
  account = signedInAs;
  $('documents').replaceChildren();
  const ids = recentIds();
  $('documents-empty').hidden = ids.length > 0;
  const docs = await Promise.all(ids.map((id) => api('GET', `/v1/documents/${encodeURIComponent(id)}`).catch(() => null)));
  for (const doc of docs.reverse()) {
    if (!doc) continue;
    showDocument(doc);
    if (doc.status === 'PROCESSING') follow(doc.document_id);
  }
  $('documents-empty').hidden = $('documents').childElementCount > 0;
}

export function initStamp() {
  const input = $('pdf');
  const zone = $('drop');
  input.addEventListener('change', () => choose(input.files[0]));
  // pdf.js starts loading as soon as the file dialog opens or a file is dragged in.
  input.addEventListener('click', () => { loadPdfJs().catch(() => {}); });
  zone.addEventListener('dragenter', () => { loadPdfJs().catch(() => {}); });
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    const file = e.dataTransfer.files[0];
    if (file) {
      const list = new DataTransfer();
      list.items.add(file);
      input.files = list.files;
      choose(file);
    }
  });
  $('stamp-form').addEventListener('submit', (e) => { e.preventDefault(); stamp(); });
  initPlacement();
  let resized = null;
  window.addEventListener('resize', () => {
    clearTimeout(resized);
    resized = setTimeout(() => { if (chosen && view) showPage(view.n); }, 200);
  });
}
