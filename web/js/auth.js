// Sign-in. `config.json` says which: locally `{"auth": {"mode": "dev"}}` (a token from the local
// gateway's `/dev/token`); on AWS `{"auth": {"mode": "oidc", ...}}`, the OpenID Connect
// authorization-code flow with PKCE against the issuer the API's JWT authorizer trusts.

const SESSION = 'emeterai-session';
const PKCE = 'emeterai-pkce';

function b64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The claims of a JWT, unverified (the API verifies; the app only shows who and until when). */
export function claimsOf(jwt) {
  try {
    const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(decodeURIComponent(escape(atob(part))));
  } catch {
    return {};
  }
}

/** The kept session `{token, who, expires}` if it is still valid for a minute. */
export function currentSession() {
  try {
    const session = JSON.parse(sessionStorage.getItem(SESSION) || 'null');
    if (session && session.token && (!session.expires || session.expires * 1000 > Date.now() + 60_000)) return session;
  } catch { /* nothing kept */ }
  return null;
}

function keep(token) {
  const claims = claimsOf(token);
  const session = { token, who: claims.email || claims['cognito:username'] || claims.preferred_username || claims.sub || '', expires: claims.exp || null };
  sessionStorage.setItem(SESSION, JSON.stringify(session));
  return session;
}

export function signOut() {
  sessionStorage.removeItem(SESSION);
}

/** Local stack: a token for `account` from the gateway. */
export async function devSignIn(account) {
  const response = await fetch(`/dev/token?sub=${encodeURIComponent(account)}`);
  if (!response.ok) throw new Error(`dev token: ${response.status}`);
  return keep((await response.text()).trim());
}

/** AWS: off to the issuer's sign-in page (PKCE S256, state checked on return). */
export async function oidcSignIn(auth) {
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const challenge = b64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
  sessionStorage.setItem(PKCE, JSON.stringify({ verifier, state }));
  const query = new URLSearchParams({
    response_type: 'code',
    client_id: auth.client_id,
    redirect_uri: redirectUri(),
    scope: auth.scope || 'openid email',
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  });
  location.assign(`${auth.authorization_endpoint}?${query}`);
}

const redirectUri = () => `${location.origin}/`;

/** Back from the issuer with `?code=&state=`: exchanges the code for tokens. */
export async function finishOidcSignIn(auth, params) {
  const pending = JSON.parse(sessionStorage.getItem(PKCE) || 'null');
  sessionStorage.removeItem(PKCE);
  if (!pending || pending.state !== params.get('state')) throw new Error('state mismatch');
  const response = await fetch(auth.token_endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: params.get('code'),
      redirect_uri: redirectUri(),
      client_id: auth.client_id,
      code_verifier: pending.verifier,
    }),
  });
  if (!response.ok) throw new Error(`token endpoint: ${response.status}`);
  const tokens = await response.json();
  // The API's JWT authorizer checks `aud` (ID token) or `client_id` (Cognito access token).
  return keep(auth.api_token === 'id_token' ? tokens.id_token : tokens.access_token || tokens.id_token);
}
