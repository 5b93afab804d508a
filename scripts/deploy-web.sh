#!/usr/bin/env bash
# deploy-web.sh STACK_NAME: publishes the web app (web/, with pdf.js from npm) to the stack's web
# bucket behind CloudFront, with a config.json for its sign-in, then invalidates the edge caches.
# Needs the AWS CLI and credentials for the stack's account. Run after `sam deploy`.
#
# Sign-in: with the template's Cognito user pool (JwtIssuer left empty) everything comes from the
# stack's outputs. With your own issuer, set EMETERAI_OIDC_AUTHORIZATION_ENDPOINT,
# EMETERAI_OIDC_TOKEN_ENDPOINT, EMETERAI_OIDC_CLIENT_ID (the API's JwtAudience) and, if the API
# should get the ID token rather than the access token, EMETERAI_OIDC_API_TOKEN=id_token.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stack="${1:-}"
[[ -n "$stack" ]] || die "usage: scripts/deploy-web.sh STACK_NAME"
command -v aws >/dev/null 2>&1 || die "the AWS CLI is required"
"$EMETERAI_ROOT/scripts/install-web.sh"

describe() {
    aws cloudformation describe-stacks --stack-name "$stack" --output text --query "Stacks[0].$1"
}
output() { describe "Outputs[?OutputKey=='$1'].OutputValue | [0]"; }
bucket="$(output WebBucketName)"
distribution="$(output WebDistributionId)"
client_id="$(output UserPoolClientId)"
sign_in_url="$(output UserPoolSignInUrl)"
unit_price="$(describe "Parameters[?ParameterKey=='UnitPrice'].ParameterValue | [0]")"
[[ "$bucket" != None && -n "$bucket" ]] || die "stack $stack has no WebBucketName output"
[[ "$unit_price" =~ ^[0-9]+$ ]] || unit_price=10000

if [[ "$client_id" != None && -n "$client_id" ]]; then
    authorize="$sign_in_url/oauth2/authorize" token="$sign_in_url/oauth2/token" api_token=access_token
else
    authorize="${EMETERAI_OIDC_AUTHORIZATION_ENDPOINT:?set it for your own issuer}"
    token="${EMETERAI_OIDC_TOKEN_ENDPOINT:?set it for your own issuer}"
    client_id="${EMETERAI_OIDC_CLIENT_ID:?set it for your own issuer}"
    api_token="${EMETERAI_OIDC_API_TOKEN:-access_token}"
fi

site="$(mktemp -d)"
trap 'rm -rf "$site"' EXIT
cp -r "$EMETERAI_ROOT/web/." "$site/"
python3 - "$site/config.json" "$authorize" "$token" "$client_id" "$api_token" "$unit_price" <<'PY'
import json, sys
path, authorize, token, client_id, api_token, unit_price = sys.argv[1:]
json.dump({"auth": {"mode": "oidc", "authorization_endpoint": authorize, "token_endpoint": token,
                    "client_id": client_id, "scope": "openid email", "api_token": api_token},
           "unit_price": int(unit_price)}, open(path, "w"))
PY

log "uploading the web app to s3://$bucket"
# The app revalidates within minutes after a deploy; pdf.js changes only with its version.
short="public, max-age=300, stale-while-revalidate=86400"
aws s3 sync "$site/" "s3://$bucket/" --delete --exclude "vendor/*" --exclude "*.mjs" --cache-control "$short"
aws s3 sync "$site/" "s3://$bucket/" --exclude "*" --include "js/*.js" --content-type "text/javascript; charset=utf-8" --cache-control "$short"
aws s3 sync "$site/vendor/" "s3://$bucket/vendor/" --delete --exclude "*.mjs" --exclude "*.wasm" --cache-control "public, max-age=86400"
aws s3 sync "$site/vendor/" "s3://$bucket/vendor/" --exclude "*" --include "*.mjs" --content-type "text/javascript; charset=utf-8" --cache-control "public, max-age=86400"
aws s3 sync "$site/vendor/" "s3://$bucket/vendor/" --exclude "*" --include "*.wasm" --content-type "application/wasm" --cache-control "public, max-age=86400"
aws cloudfront create-invalidation --distribution-id "$distribution" --paths "/*" >/dev/null
log "published: $(output WebUrl)"
