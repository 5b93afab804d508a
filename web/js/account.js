// Balance, buying (one Idempotency-Key per purchase intent, kept across retries and reloads),
// invoices with their Pay link and Refund button. Everything shown comes from the API.

import { api, newKey, withRetries } from './api.js';
import { money, t, when } from './i18n.js';
import { $, announce, el, showProblem } from './ui.js';

const INTENT = 'emeterai-buy-intent';
let unitPrice = 10000;
let invoices = [];
let nextCursor = null;
let awaitedOrder = null; // order_id we came back from the payment page with
let refreshTimer = null;
export let available = null;

export function setUnitPrice(price) {
  if (Number.isInteger(price) && price > 0) unitPrice = price;
  showPrice();
}

function showPrice() {
  const quantity = Number($('quantity').value);
  const valid = Number.isInteger(quantity) && quantity >= 1 && quantity <= 1000;
  $('price').textContent = `${t('price_each', { price: money(unitPrice) })}. ${valid ? t('price_total', { amount: money(unitPrice * quantity) }) : ''}`;
}

export async function refreshQuota() {
  const quota = await api('GET', '/v1/quota');
  available = quota.available;
  $('available').textContent = t('available', { n: quota.available });
  $('pending').textContent = quota.pending ? t('pending', { n: quota.pending }) : '';
  return quota;
}

export async function loadInvoices({ more = false } = {}) {
  const query = more && nextCursor ? `?cursor=${encodeURIComponent(nextCursor)}` : '';
  const page = await api('GET', `/v1/invoices${query}`);
  invoices = more ? [...invoices, ...page.invoices] : page.invoices;
  nextCursor = page.next_cursor;
  if (invoices[0]?.unit_price) setUnitPrice(invoices[0].unit_price);
  renderInvoices();
  return invoices;
}

function refundLine(inv) {
  const r = inv.refund;
  if (!r) return null;
  const key = `refund_status_${r.status}`;
  const text = t(key, { amount: money(r.amount) });
  // An unknown status is shown as in progress: never as paid back.
  return el('p', { class: r.status === 'COMPLETED' ? 'state ok' : '' }, text === key ? t('refund_status_REQUESTED', { amount: money(r.amount) }) : text);
}

function invoiceItem(inv) {
  const id = inv.invoice_id;
  const heading = `inv-${id}-h`;
  const actions = el('div', { class: 'actions' });
  if (inv.status === 'PENDING' && inv.payment?.redirect_url) {
    const help = `inv-${id}-pay`;
    actions.append(
      el('a', { class: 'button', href: inv.payment.redirect_url, 'aria-describedby': `${heading} ${help}` }, t('pay')),
      el('span', { id: help, class: 'help' }, t('pay_help', { amount: money(inv.amount) })),
    );
  } else if (inv.status === 'PENDING') {
    actions.append(
      el('span', { class: 'help' }, t('no_payment_link')),
      el('button', { type: 'button', class: 'secondary', 'aria-describedby': heading, onclick: (e) => retryPayment(inv, e.currentTarget) }, t('try_again')),
    );
  }
  if (inv.status === 'PAID' && inv.remaining > 0) {
    const help = `inv-${id}-refund`;
    actions.append(
      el('button', { type: 'button', class: 'secondary', 'aria-describedby': `${heading} ${help}`, onclick: (e) => refund(inv, e.currentTarget) }, t('refund')),
      el('span', { id: help, class: 'help' }, t('refund_help', { units: inv.remaining, amount: money(inv.remaining * inv.unit_price) })),
    );
  }
  const settled = ['PAID', 'REFUNDED'].includes(inv.status);
  return el('li', { id: `inv-${id}`, 'data-order': inv.order_id },
    el('h3', { id: heading }, t('invoice_heading', { quantity: inv.quantity, amount: money(inv.amount) })),
    el('p', {}, `${t('status')}: `, el('span', { class: `state ${settled ? 'ok' : ''}` }, inv.status), ` (${t(`status_${inv.status}`)})`),
    el('p', {}, t('units', { used: inv.used ?? 0, remaining: inv.remaining ?? 0, refunded: inv.refunded ?? 0 })),
    el('p', { class: 'help' }, t('invoice_created_at', { at: when(inv.created_at) })),
    inv.status === 'PAID' && inv.valid_until ? el('p', { class: 'help' }, t('valid_until', { at: when(inv.valid_until) })) : null,
    refundLine(inv),
    inv.review ? el('p', {}, t('review_flag')) : null,
    actions.childElementCount ? actions : null,
  );
}

function renderInvoices() {
  $('invoices').replaceChildren(...invoices.map(invoiceItem));
  $('invoices-empty').hidden = invoices.length > 0;
  $('more-invoices').hidden = !nextCursor;
}

async function retryPayment(inv, button) {
  button.disabled = true;
  try {
    await withRetries(() => api('POST', `/v1/invoices/${inv.invoice_id}/payment`), { tries: 3 });
    showProblem(null);
    await loadInvoices();
  } catch (e) {
    showProblem(e.message);
    button.disabled = false;
  }
}

async function refund(inv, button) {
  const keyName = `emeterai-refund-${inv.invoice_id}`;
  const key = sessionStorage.getItem(keyName) || newKey();
  sessionStorage.setItem(keyName, key);
  button.disabled = true;
  try {
    const r = await withRetries(() => api('POST', `/v1/invoices/${inv.invoice_id}/refund`, { headers: { 'Idempotency-Key': key } }));
    sessionStorage.removeItem(keyName);
    showProblem(null);
    announce(t('refund_requested', { amount: money(r.amount), units: r.units }));
  } catch (e) {
    if (!e.retryable) sessionStorage.removeItem(keyName);
    showProblem(e.message);
  }
  await refresh();
}

function readIntent() {
  try { return JSON.parse(sessionStorage.getItem(INTENT) || 'null'); } catch { return null; }
}

/** Buys `quantity`: the same intent (same quantity, not yet answered) keeps its key, so a double
 * click, a retry after a lost answer or a reload in between never creates a second invoice. */
export async function buy(quantity) {
  let intent = readIntent();
  if (!intent || intent.quantity !== quantity) {
    intent = { key: newKey(), quantity };
    sessionStorage.setItem(INTENT, JSON.stringify(intent));
  }
  const button = $('buy');
  button.disabled = true;
  showProblem(null);
  announce(t('buying'));
  try {
    const invoice = await withRetries(
      () => api('POST', '/v1/checkouts', { body: { quantity }, headers: { 'Idempotency-Key': intent.key } }),
      { onRetry: () => announce(t('buy_retrying')) },
    );
    sessionStorage.removeItem(INTENT);
    announce(t('invoice_created', { amount: money(invoice.amount) }));
    await refresh();
    document.querySelector(`#inv-${CSS.escape(invoice.invoice_id)} a.button`)?.focus();
  } catch (e) {
    // A refused request is final for this intent; a failure worth retrying keeps its key.
    if (!e.retryable) sessionStorage.removeItem(INTENT);
    showProblem(e.message);
  } finally {
    button.disabled = false;
  }
}

/** A purchase interrupted by a reload is finished with its own key. */
export function resumeInterruptedPurchase() {
  const intent = readIntent();
  if (!intent) return;
  $('quantity').value = intent.quantity;
  showPrice();
  announce(t('buy_resumed'));
  buy(intent.quantity);
}

/** Back from the payment page (`?order_id=...`): watch that invoice until the API says PAID. */
export function noteReturnFromPayment(params) {
  awaitedOrder = params.get('order_id');
  if (!awaitedOrder) return;
  const url = new URL(location.href);
  for (const name of ['order_id', 'status_code', 'transaction_status']) url.searchParams.delete(name);
  history.replaceState(null, '', url);
  announce(t('waiting_payment'));
}

export async function refresh() {
  try {
    await Promise.all([refreshQuota(), loadInvoices()]);
    showProblem(null);
  } catch (e) {
    showProblem(e.message);
  }
  if (awaitedOrder) {
    const inv = invoices.find((i) => i.order_id === awaitedOrder);
    if (inv && inv.status !== 'PENDING') {
      awaitedOrder = null;
      announce(inv.status === 'PAID' ? t('paid_now', { n: inv.quantity }) : `${inv.status}: ${t(`status_${inv.status}`)}`);
    }
  }
  scheduleRefresh();
}

/** Polls while something is moving: quickly while a payment is awaited, slowly while an invoice
 * is unpaid or a refund is under way; never while the page is hidden. */
function scheduleRefresh() {
  clearTimeout(refreshTimer);
  const moving = invoices.some((i) => i.status === 'PENDING' || (i.refund && !['COMPLETED', 'NEEDS_REVIEW'].includes(i.refund.status)));
  const delay = awaitedOrder ? 2000 : moving ? 15000 : null;
  if (delay === null) return;
  refreshTimer = setTimeout(() => {
    if (document.hidden) document.addEventListener('visibilitychange', refresh, { once: true });
    else refresh();
  }, delay);
}

export function stopRefreshing() {
  clearTimeout(refreshTimer);
}

export function initAccount() {
  $('quantity').addEventListener('input', showPrice);
  $('buy-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const quantity = Number($('quantity').value);
    if (!Number.isInteger(quantity) || quantity < 1 || quantity > 1000) {
      showProblem(t('err_quantity_out_of_range'));
      $('quantity').focus();
      return;
    }
    buy(quantity);
  });
  $('more-invoices').addEventListener('click', () => loadInvoices({ more: true }).catch((e) => showProblem(e.message)));
  showPrice();
}
