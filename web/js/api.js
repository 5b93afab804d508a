// The HTTP API on the same origin (`/v1/...`): JSON in and out, RFC 9457 problems turned into an
// `ApiFailure` whose `message` a person understands.

import { t } from './i18n.js';

const ACCOUNT_LIMITS = new Set(['too_many_unpaid_checkouts', 'too_many_open_documents']);

export class ApiFailure extends Error {
  constructor(status, code, detail) {
    super(messageFor(status, code));
    this.status = status; // 0 when the network failed
    this.code = code;
    this.detail = detail;
  }

  /** Worth retrying the very same request (network, throttling, server trouble, in flight).
   *  An account's own limit is not: it lasts minutes, until the person pays or a stamp ends. */
  get retryable() {
    const throttled = this.status === 429 && !ACCOUNT_LIMITS.has(this.code);
    return this.status === 0 || throttled || this.status >= 500 || this.code === 'idempotency_key_in_progress';
  }
}

export function messageFor(status, code) {
  if (status === 0) return t('err_network');
  const specific = `err_${code}`;
  if (t(specific) !== specific) return t(specific);
  if (status === 401) return t('err_unauthorized');
  if (status === 404) return t('err_not_found');
  if (status === 429) return t('err_too_many_requests');
  if (status >= 500) return t('err_busy');
  return t('err_other', { code: code || status });
}

let token = null;
let onUnauthorized = () => {};

export function useToken(value, whenRefused) {
  token = value;
  if (whenRefused) onUnauthorized = whenRefused;
}

/** `api('POST', '/v1/checkouts', {body, headers})` → the parsed JSON answer. */
export async function api(method, path, { body, headers = {}, signal } = {}) {
  const init = { method, headers: { Accept: 'application/json', ...headers }, signal };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiFailure(0, 'network');
  }
  const text = await response.text().catch(() => '');
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    const failure = new ApiFailure(response.status, data?.code || `http_${response.status}`, data?.detail);
    if (response.status === 401) onUnauthorized(failure);
    throw failure;
  }
  return data;
}

/** Calls `attempt` until it succeeds or fails for good: retryable failures wait 1, 2, 4, 8 s. */
export async function withRetries(attempt, { tries = 5, onRetry = () => {} } = {}) {
  for (let i = 0; ; i++) {
    try {
      return await attempt();
    } catch (e) {
      if (!(e instanceof ApiFailure) || !e.retryable || i + 1 >= tries) throw e;
      onRetry(e, i);
      await sleep(1000 * 2 ** i);
    }
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A fresh Idempotency-Key (`A-Z a-z 0-9 -`, 36 characters). */
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}
