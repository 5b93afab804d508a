// Boot: language, configuration, sign-in, then the signed-in app (balance, buy, stamp, invoices).

import { useToken } from './api.js';
import { currentSession, devSignIn, finishOidcSignIn, oidcSignIn, signOut } from './auth.js';
import { lang, t, translatePage } from './i18n.js';
import { initAccount, noteReturnFromPayment, refresh, resumeInterruptedPurchase, setUnitPrice, stopRefreshing } from './account.js';
import { initStamp, loadDocuments } from './stamp.js';
import { $, showProblem } from './ui.js';

async function loadConfig() {
  try {
    const response = await fetch('/config.json');
    if (response.ok) return await response.json();
  } catch { /* offline: the local defaults */ }
  return { auth: { mode: 'dev' } };
}

function showSignIn(config) {
  stopRefreshing();
  $('app').hidden = true;
  $('who').hidden = true;
  $('sign-out').hidden = true;
  $('signin').hidden = false;
  const dev = config.auth?.mode !== 'oidc';
  $('dev-signin').hidden = !dev;
  $('account').required = dev;
  $('oidc-help').hidden = dev;
}

async function showApp(session) {
  useToken(session.token, () => {
    signOut();
    showSignIn(window.emeteraiConfig);
    showProblem(t('err_unauthorized'));
  });
  $('signin').hidden = true;
  $('app').hidden = false;
  $('who').textContent = t('signed_in_as', { who: session.who });
  $('who').hidden = false;
  $('sign-out').hidden = false;
  await Promise.all([refresh(), loadDocuments(session.who)]);
  resumeInterruptedPurchase();
}

async function main() {
  translatePage();

  const config = await loadConfig();
  window.emeteraiConfig = config;
  if (Number.isInteger(config.unit_price)) setUnitPrice(config.unit_price);
  initAccount();
  initStamp();

  const params = new URLSearchParams(location.search);
  noteReturnFromPayment(params);
  const other = lang === 'en' ? 'id' : 'en';
  const switcher = $('other-language');
  switcher.href = `?lang=${other}`;
  switcher.lang = other;
  if (config.auth?.mode === 'oidc' && params.has('code')) {
    try {
      await finishOidcSignIn(config.auth, params);
    } catch {
      showProblem(t('err_signin'));
    }
    const clean = new URL(location.href);
    for (const name of ['code', 'state', 'session_state']) clean.searchParams.delete(name);
    history.replaceState(null, '', clean);
  }

  $('signin-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    showProblem(null);
    try {
      if (config.auth?.mode === 'oidc') {
        await oidcSignIn(config.auth);
        return;
      }
      const account = $('account').value.trim();
      if (!account) { $('account').focus(); return; }
      await showApp(await devSignIn(account));
      $('main').focus();
    } catch {
      showProblem(t('err_signin'));
    }
  });
  $('sign-out').addEventListener('click', () => {
    signOut();
    showSignIn(config);
    $('main').focus();
  });

  const session = currentSession();
  if (session) await showApp(session);
  else showSignIn(config);
  document.body.dataset.ready = 'true';
  performance.mark('emeterai-ready');
}

main();
